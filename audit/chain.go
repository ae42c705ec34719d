package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/internal/pg"
)

// The audit trail is hash-chained (tamper-evident): each sealed row stores
//
//	hash = SHA-256(prev_hash || canonical(row))
//
// where prev_hash is the hash of the row before it in the chain (32 zero
// bytes for the first). Changing any sealed row's content, or removing a
// row, breaks the chain at that row, which Verify reports.
//
// Writers do not touch the chain: Record only inserts. Seal, run by one
// worker at a time every few seconds, appends the committed rows not yet in
// the chain. Sealing at insert time would need a lock on the chain head held
// by every audited transaction until it commits; see migrations/0008.

// sealBatch bounds one sealing transaction.
const sealBatch = 1000

// chainRow is what the hash covers, plus the chain columns.
type chainRow struct {
	ID          int64      `db:"id"`
	Seq         *int64     `db:"seq"`
	At          time.Time  `db:"at"`
	ActorID     *uuid.UUID `db:"actor_id"`
	Action      string     `db:"action"`
	ObjectType  string     `db:"object_type"`
	ObjectID    string     `db:"object_id"`
	Outcome     string     `db:"outcome"`
	ClientAddr  string     `db:"client_addr"`
	PatientRef  *string    `db:"patient_ref"`
	DetailsText string     `db:"details_text"`
	PrevHash    []byte     `db:"prev_hash"`
	Hash        []byte     `db:"hash"`
}

const chainColumns = `id, seq, at, actor_id, action, object_type, object_id, outcome, client_addr, patient_ref,
	details::text AS details_text, prev_hash, hash`

// canonical is the row's content as the hash covers it: a version tag, then
// every field length-prefixed, so no two different rows encode alike. The
// details are PostgreSQL's text form of the jsonb value, which is the same
// for equal values (keys sorted, no insignificant space).
func canonical(r chainRow, seq int64) []byte {
	var b bytes.Buffer
	field := func(s string) {
		b.Write(binary.AppendUvarint(nil, uint64(len(s))))
		b.WriteString(s)
	}
	field("callroom.audit.v1")
	field(fmt.Sprint(seq))
	field(fmt.Sprint(r.ID))
	field(fmt.Sprint(r.At.UnixMicro()))
	if r.ActorID != nil {
		field(r.ActorID.String())
	} else {
		field("")
	}
	field(r.Action)
	field(r.ObjectType)
	field(r.ObjectID)
	field(r.Outcome)
	field(r.ClientAddr)
	if r.PatientRef != nil {
		field("1" + *r.PatientRef)
	} else {
		field("0")
	}
	field(r.DetailsText)
	return b.Bytes()
}

func chainHash(prev []byte, r chainRow, seq int64) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonical(r, seq))
	return h.Sum(nil)
}

// Seal appends every committed, unsealed row to the chain, in id order, and
// returns how many it sealed. Concurrent calls (several instances) take
// turns on the chain head's row lock, so each row is sealed once.
func Seal(ctx context.Context, db *pgxpool.Pool) (int, error) {
	total := 0
	for {
		n, err := sealOnce(ctx, db)
		total += n
		if err != nil || n < sealBatch {
			return total, err
		}
	}
}

func sealOnce(ctx context.Context, db *pgxpool.Pool) (int, error) {
	n := 0
	err := pg.InTx(ctx, db, func(tx pgx.Tx) error {
		var seq int64
		var prev []byte
		if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_chain_head FOR UPDATE`).Scan(&seq, &prev); err != nil {
			return fmt.Errorf("audit chain head: %w", err)
		}
		rows, _ := tx.Query(ctx, `SELECT `+chainColumns+` FROM audit_events WHERE hash IS NULL ORDER BY id LIMIT $1`, sealBatch)
		todo, err := pgx.CollectRows(rows, pgx.RowToStructByName[chainRow])
		if err != nil || len(todo) == 0 {
			return err
		}
		ids := make([]int64, len(todo))
		seqs := make([]int64, len(todo))
		prevs := make([][]byte, len(todo))
		hashes := make([][]byte, len(todo))
		for i, r := range todo {
			seq++
			ids[i], seqs[i], prevs[i] = r.ID, seq, prev
			prev = chainHash(prev, r, seq)
			hashes[i] = prev
		}
		tag, err := tx.Exec(ctx, `UPDATE audit_events e SET seq = s.seq, prev_hash = s.prev, hash = s.hash
			FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS s (id, seq, prev, hash)
			WHERE e.id = s.id AND e.hash IS NULL`, ids, seqs, prevs, hashes)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(todo) {
			return fmt.Errorf("audit seal: %d of %d rows sealed", tag.RowsAffected(), len(todo))
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_chain_head SET seq = $1, hash = $2`, seq, prev); err != nil {
			return err
		}
		n = len(todo)
		return nil
	})
	return n, err
}

// Break is where the chain first fails to verify.
type Break struct {
	Seq    int64  // the position in the chain
	ID     int64  // the row at that position; 0 when it is missing
	Reason string // altered, removed, ...
}

func (b Break) String() string {
	if b.ID == 0 {
		return fmt.Sprintf("seq %d: %s", b.Seq, b.Reason)
	}
	return fmt.Sprintf("row %d (seq %d): %s", b.ID, b.Seq, b.Reason)
}

// Report is what Verify found.
type Report struct {
	Verified  int64  // sealed rows whose hashes check
	FirstSeq  int64  // first seq present (1 unless rows past retention were purged)
	HeadSeq   int64  // the chain head's seq
	HeadHash  string // hex; record it elsewhere to detect the chain being rebuilt
	Unsealed  int64  // rows not yet in the chain (sealed within seconds)
	Break     *Break // nil when the chain is intact
	CheckedAt time.Time
}

// ErrChainBroken is returned by Verify (wrapped, with the Break) when the
// audit trail was altered.
var ErrChainBroken = errors.New("audit chain broken")

// Verify walks the chain in seq order and recomputes every hash. It names
// the first row whose content no longer matches its hash (altered), whose
// link to the row before does not match (altered, or a row between was
// removed and the chain rewritten), or the first missing seq (removed). A
// chain that starts after seq 1 is accepted as purged only if its start
// is vouched for by a sealed audit.purge event. It reads in batches, so its memory is bounded.
func Verify(ctx context.Context, q pg.Querier) (Report, error) {
	return verify(ctx, q, 0, nil)
}

// VerifyFrom verifies only the rows after an anchor recorded earlier (seq
// and hash as a previous Verify reported the head): the row at seq must
// still carry hash, and every row after it must chain from it. A daily run
// then reads one day of rows, not six years; run Verify now and then.
func VerifyFrom(ctx context.Context, q pg.Querier, seq int64, hash []byte) (Report, error) {
	if err := CheckAnchor(ctx, q, seq, hash); err != nil {
		rep := Report{CheckedAt: time.Now()}
		if errors.Is(err, ErrChainBroken) {
			rep.Break = &Break{Seq: seq, Reason: err.Error()}
		}
		return rep, err
	}
	return verify(ctx, q, seq, hash)
}

func verify(ctx context.Context, q pg.Querier, fromSeq int64, fromHash []byte) (Report, error) {
	rep := Report{CheckedAt: time.Now()}
	var headHash []byte
	if err := q.QueryRow(ctx, `SELECT seq, hash FROM audit_chain_head`).Scan(&rep.HeadSeq, &headHash); err != nil {
		return rep, fmt.Errorf("audit chain head: %w", err)
	}
	rep.HeadHash = hex.EncodeToString(headHash)
	if err := q.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE hash IS NULL`).Scan(&rep.Unsealed); err != nil {
		return rep, err
	}
	prev, expect := fromHash, fromSeq
	if fromHash != nil {
		rep.FirstSeq = fromSeq + 1
	}
	fail := func(b Break) (Report, error) {
		rep.Break = &b
		return rep, fmt.Errorf("%w at %s", ErrChainBroken, b)
	}
	for {
		// Only up to the head read above: rows sealed since (a running
		// callroom seals every few seconds) are the next run's business, and
		// the head and the rows up to it were committed together.
		rows, _ := q.Query(ctx, `SELECT `+chainColumns+` FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT 5000`,
			expect, rep.HeadSeq)
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByName[chainRow])
		if err != nil {
			return rep, err
		}
		for _, r := range batch {
			seq := *r.Seq
			if prev == nil { // the first row
				rep.FirstSeq = seq
				if seq == 1 {
					prev = make([]byte, sha256.Size)
				} else {
					// Rows before were purged after the retention period; a
					// sealed audit.purge event must vouch for where it cut.
					var vouched bool
					err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events WHERE action = 'audit.purge' AND seq IS NOT NULL
						AND details->>'through_seq' = $1 AND details->>'through_hash' = $2)`,
						fmt.Sprint(seq-1), hex.EncodeToString(r.PrevHash)).Scan(&vouched)
					if err != nil {
						return rep, err
					}
					if !vouched {
						return fail(Break{Seq: 1, Reason: fmt.Sprintf("removed: the chain starts at seq %d and no audit.purge event accounts for the rows before", seq)})
					}
					prev = r.PrevHash
				}
				expect = seq - 1
			}
			if seq != expect+1 {
				return fail(Break{Seq: expect + 1, Reason: fmt.Sprintf("removed (the chain goes from seq %d to %d)", expect, seq)})
			}
			if !bytes.Equal(r.PrevHash, prev) {
				return fail(Break{Seq: seq, ID: r.ID, Reason: "altered: its link to the row before does not match (that row, or this one, was rewritten)"})
			}
			if !bytes.Equal(chainHash(prev, r, seq), r.Hash) {
				return fail(Break{Seq: seq, ID: r.ID, Reason: "altered: its content does not match its hash"})
			}
			prev, expect = r.Hash, seq
			rep.Verified++
		}
		if len(batch) < 5000 {
			break
		}
	}
	if expect != rep.HeadSeq {
		return fail(Break{Seq: expect + 1, Reason: fmt.Sprintf("removed: the chain ends at seq %d but its head says %d", expect, rep.HeadSeq)})
	}
	if rep.HeadSeq > 0 && !bytes.Equal(prev, headHash) {
		return fail(Break{Seq: expect, Reason: "altered: the last row's hash does not match the chain head"})
	}
	return rep, nil
}

// SealArgs asks for the audit trail to be sealed.
type SealArgs struct{}

func (SealArgs) Kind() string { return "audit.seal" }

// SealWorker runs Seal.
type SealWorker struct {
	river.WorkerDefaults[SealArgs]
	DB *pgxpool.Pool
}

func (w *SealWorker) Work(ctx context.Context, _ *river.Job[SealArgs]) error {
	_, err := Seal(ctx, w.DB)
	return err
}

// SealInterval is how often the trail is sealed: the window in which a row
// altered by someone who can bypass the triggers goes unnoticed.
const SealInterval = 5 * time.Second

// SealPeriodic seals the trail every SealInterval on the elected leader.
func SealPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(SealInterval),
		func() (river.JobArgs, *river.InsertOpts) { return SealArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// CheckAnchor compares the chain with a head recorded earlier elsewhere (the
// seq and hash 'callroom audit verify' printed). Verify alone cannot tell a
// chain rebuilt wholesale by someone with the owner's credentials from the
// original; a recorded hash can: the row at seq must still carry it. Run it
// after Verify succeeds.
func CheckAnchor(ctx context.Context, q pg.Querier, seq int64, hash []byte) error {
	var got []byte
	err := q.QueryRow(ctx, `SELECT hash FROM audit_events WHERE seq = $1`, seq).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		var first int64
		if err := q.QueryRow(ctx, `SELECT coalesce(min(seq), 0) FROM audit_events WHERE seq IS NOT NULL`).Scan(&first); err != nil {
			return err
		}
		if first > seq {
			return fmt.Errorf("anchor seq %d was purged (the chain now starts at %d): record a newer anchor", seq, first)
		}
		return fmt.Errorf("%w: anchor seq %d is not in the chain (removed, or the chain was rebuilt shorter)", ErrChainBroken, seq)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(got, hash) {
		return fmt.Errorf("%w: the row at anchor seq %d no longer has the recorded hash (the chain was rebuilt)", ErrChainBroken, seq)
	}
	return nil
}
