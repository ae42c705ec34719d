package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/keys"
)

const keysUsage = `Usage:
  callroom keys init   --file PATH [--id ID] [--if-missing]
  callroom keys rotate [--file PATH] [--id ID] [--database-url URL]
  callroom keys rewrap [--file PATH] [--database-url URL]

init   writes a new master key file (mode 0600); it never overwrites one.
rotate appends a new master key to the key file, makes it current, and
       re-wraps every data key under it. Message data is not re-encrypted.
rewrap re-wraps data keys still under an older master key under the current
       one; run it to finish an interrupted rotation, and once more after
       every instance has the new key file, before removing an old key.

PATH defaults to $CALLROOM_MASTER_KEY_FILE. Key material is never printed.
`

// keysCommand runs 'callroom keys ...'.
func keysCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("usage: callroom keys init|rotate|rewrap")
	}
	switch args[0] {
	case "init":
		return keysInit(args[1:], stdout, stderr)
	case "rotate":
		return keysRotate(ctx, args[1:], stdout, stderr)
	case "rewrap":
		return keysRewrap(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	fmt.Fprint(stderr, keysUsage)
	return fmt.Errorf("unknown keys command %q", args[0])
}

func keyFileFlag(fs *flag.FlagSet) *string {
	return fs.String("file", os.Getenv("CALLROOM_MASTER_KEY_FILE"), "master key file (env CALLROOM_MASTER_KEY_FILE)")
}

func keysInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := keyFileFlag(fs)
	id := fs.String("id", "", "id of the new master key (default mk-<UTC date>-<time>)")
	ifMissing := fs.Bool("if-missing", false, "if the file exists, check that it loads and leave it alone (for 'make run')")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("keys init: --file is required")
	}
	if *ifMissing {
		if _, err := os.Stat(*file); err == nil {
			mk, err := keys.LoadMasterKeys(*file, "")
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "keys: using the existing master key file %s (current key %q)\n", *file, mk.Current())
			return nil
		}
	}
	if *id == "" {
		*id = keys.NewMasterKeyID(time.Now())
	}
	if err := keys.CreateKeyFile(*file, *id); err != nil {
		return err
	}
	fmt.Fprintln(stdout, *id)
	fmt.Fprintf(stderr, "keys: wrote master key %q to %s (mode 0600).\n"+
		"Back it up apart from the database backups: without it no message can be read, and with the database it reads them all.\n",
		*id, *file)
	return nil
}

// openKeysDB opens the database for rotate and rewrap, after loading the key
// file, so that nothing is changed when either is wrong.
func openKeysDB(ctx context.Context, name string, args []string, stderr io.Writer) (file string, mk *keys.MasterKeys, pool *pgxpool.Pool, newID string, err error) {
	fs, cfg, check := newFlags(name, stderr, false)
	f := keyFileFlag(fs)
	var id *string
	if name == "keys rotate" {
		id = fs.String("id", "", "id of the new master key (default mk-<UTC date>-<time>)")
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, nil, "", err
	}
	if err := check(); err != nil {
		return "", nil, nil, "", err
	}
	if *f == "" {
		if os.Getenv("CALLROOM_MASTER_KEY") != "" {
			return "", nil, nil, "", fmt.Errorf("%s works on a key file, and CALLROOM_MASTER_KEY holds a single key: "+
				"move to a key file (CALLROOM_MASTER_KEY_FILE, lines \"<key-id> <base64>\") to rotate", name)
		}
		return "", nil, nil, "", fmt.Errorf("%s: --file (or CALLROOM_MASTER_KEY_FILE) is required", name)
	}
	mk, err = keys.LoadMasterKeys(*f, "")
	if err != nil {
		return "", nil, nil, "", err
	}
	if id != nil {
		newID = *id
		if newID == "" {
			newID = keys.NewMasterKeyID(time.Now())
		}
		if mk.Has(newID) {
			return "", nil, nil, "", fmt.Errorf("%s already has a key %q: pass another --id", *f, newID)
		}
	}
	pool, err = pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: 2})
	if err != nil {
		return "", nil, nil, "", err
	}
	// Every data key must unwrap with this file before anything changes.
	if err := keys.CheckMasterKeys(ctx, pool, mk); err != nil {
		pool.Close()
		return "", nil, nil, "", fmt.Errorf("%s: %w", *f, err)
	}
	return *f, mk, pool, newID, nil
}

func keysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	file, old, pool, id, err := openKeysDB(ctx, "keys rotate", args, stderr)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := keys.AppendMasterKey(file, id); err != nil {
		return err
	}
	mk, err := keys.LoadMasterKeys(file, "")
	if err != nil {
		return err
	}
	if mk.Current() != id {
		return fmt.Errorf("%s: after appending %q the current key is %q; is another rotation running?", file, id, mk.Current())
	}
	n, err := keys.Rewrap(ctx, pool, mk)
	if err != nil {
		fmt.Fprintf(stderr, "keys: master key %q is in %s, but re-wrapping stopped; run 'callroom keys rewrap --file %s' to finish.\n", id, file, file)
		return err
	}
	fmt.Fprintf(stdout, "re-wrapped %d data keys under master key %s\n", n, id)
	fmt.Fprintf(stderr, `keys: master key %q is now current in %s
Next:
  1. Copy this key file to every callroom instance (its CALLROOM_MASTER_KEY_FILE)
     and restart them one at a time. An instance without the new key cannot
     start, because the data keys are now wrapped by %q; instances that keep
     running keep working with the data keys they hold.
  2. Keep the old key(s) (%s) in the file until every instance has the new
     file. Then run 'callroom keys rewrap' once more, which re-wraps any data
     key an instance with the old file made meanwhile, and only then remove
     the old key(s).
  3. Back up the new key file, apart from the database backups.
`, id, file, id, strings.Join(old.IDs(), ", "))
	return nil
}

func keysRewrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, mk, pool, _, err := openKeysDB(ctx, "keys rewrap", args, stderr)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := keys.Rewrap(ctx, pool, mk)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-wrapped %d data keys under master key %s\n", n, mk.Current())
	return nil
}
