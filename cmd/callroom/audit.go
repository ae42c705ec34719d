package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

const auditUsage = `Usage:
  callroom audit verify [--anchor SEQ:SHA256 [--since-anchor]] [--database-url URL]
  callroom audit purge --before YYYY-MM-DD [--database-url URL]

verify walks the audit trail's hash chain, recomputing every hash, and names
       the first row altered or removed (exit status 1). It prints the chain
       head's hash: keep it elsewhere, and pass it back with --anchor to
       detect a chain rebuilt wholesale. --since-anchor checks only the rows
       after the anchor (a quick daily run; walk everything now and then).
purge  deletes audit rows recorded before the date, which must be at least
       six years ago; run it as the database owner.
`

// auditCommand runs 'callroom audit ...'.
func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("usage: callroom audit verify|purge")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "purge":
		return auditPurge(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("unknown audit command %q", args[0])
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg, check := newFlags("audit verify", stderr, false)
	anchor := fs.String("anchor", "", "SEQ:SHA256 of a chain head recorded earlier (as printed by a previous verify); fails if the chain no longer contains it")
	since := fs.Bool("since-anchor", false, "verify only the rows after --anchor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	if *since && *anchor == "" {
		return errors.New("audit verify: --since-anchor needs --anchor")
	}
	var anchorSeq int64
	var anchorHash []byte
	if *anchor != "" {
		seqText, hashText, ok := strings.Cut(*anchor, ":")
		seq, err := strconv.ParseInt(seqText, 10, 64)
		h, herr := hex.DecodeString(hashText)
		if !ok || err != nil || seq < 1 || herr != nil || len(h) != 32 {
			return errors.New("audit verify: --anchor must be SEQ:SHA256 (hex), as printed by verify")
		}
		anchorSeq, anchorHash = seq, h
	}
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	var rep audit.Report
	if *since {
		rep, err = audit.VerifyFrom(ctx, pool, anchorSeq, anchorHash)
	} else {
		rep, err = audit.Verify(ctx, pool)
	}
	if errors.Is(err, audit.ErrChainBroken) {
		fmt.Fprintf(stdout, "audit trail BROKEN at %s\n", rep.Break)
		fmt.Fprintf(stdout, "%d rows verified before it\n", rep.Verified)
		return fmt.Errorf("audit trail broken at %s", rep.Break)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit trail intact: %d rows verified (seq %d..%d)\n", rep.Verified, rep.FirstSeq, rep.HeadSeq)
	if anchorHash != nil && !*since {
		if err := audit.CheckAnchor(ctx, pool, anchorSeq, anchorHash); err != nil {
			fmt.Fprintf(stdout, "audit trail BROKEN: %v\n", err)
			return err
		}
		fmt.Fprintf(stdout, "anchor seq %d found with its recorded hash\n", anchorSeq)
	}
	fmt.Fprintf(stdout, "chain head: seq %d sha256 %s\n", rep.HeadSeq, rep.HeadHash)
	if rep.HeadSeq > 0 {
		fmt.Fprintf(stdout, "record it elsewhere; check later with --anchor %d:%s\n", rep.HeadSeq, rep.HeadHash)
	}
	if rep.Unsealed > 0 {
		fmt.Fprintf(stdout, "%d newer rows not yet sealed (sealed every %s by a running callroom)\n", rep.Unsealed, audit.SealInterval)
	}
	return nil
}

func auditPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg, check := newFlags("audit purge", stderr, false)
	before := fs.String("before", "", "delete audit rows recorded before this date (YYYY-MM-DD, at least six years ago)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	day, err := time.Parse(time.DateOnly, *before)
	if err != nil {
		return errors.New("audit purge: --before YYYY-MM-DD is required")
	}
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := audit.Purge(ctx, pool, day)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "purged %d audit rows recorded before %s\n", n, *before)
	return nil
}
