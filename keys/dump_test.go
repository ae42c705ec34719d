package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/pgtest"
)

// TestDumpHoldsNoPlaintextNorKeys is the point of the package: a database
// dump (or a stolen backup) holding sealed PHI shows neither the PHI nor the
// keys that would decrypt it.
func TestDumpHoldsNoPlaintextNorKeys(t *testing.T) {
	t.Parallel()
	pgDump := pgtest.PgDump(t)
	ctx := context.Background()
	db := pgtest.New(t)
	file := filepath.Join(t.TempDir(), "master.keys")
	if err := CreateKeyFile(file, "dump-test"); err != nil {
		t.Fatal(err)
	}
	mk, err := LoadMasterKeys(file, "")
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring(ctx, db.Pool, mk)
	if err != nil {
		t.Fatal(err)
	}

	// A row the way callers store one: blob, and the key id referencing data_keys.
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE sealed_messages (
		id uuid PRIMARY KEY, data_key_id uuid NOT NULL REFERENCES data_keys (id), body bytea NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("Jane Q. Doe MRN 8675309 DOB 1961-04-12: troponin 4.2, page cardiology STAT")
	msgID := uuid.New()
	blob, keyID, err := k.Seal(ctx, plaintext, []byte("message:"+msgID.String()+":1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO sealed_messages VALUES ($1, $2, $3)`, msgID, keyID, blob); err != nil {
		t.Fatal(err)
	}

	var wrapped []byte
	if err := db.Pool.QueryRow(ctx, `SELECT wrapped FROM data_keys WHERE id = $1`, keyID).Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	dataKey, err := unwrap(mk, mk.Current(), keyID, wrapped)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(pgDump, "--no-password", "--dbname", db.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pgDump, err, stderr.String())
	}
	lower := bytes.ToLower(dump)

	// The dump does hold the rows, so what is absent is absent for the right reason.
	if !bytes.Contains(lower, []byte(hex.EncodeToString(blob))) {
		t.Fatal("the dump does not contain the sealed blob; the test is not looking at the right data")
	}
	if !bytes.Contains(lower, []byte(hex.EncodeToString(wrapped))) || !bytes.Contains(dump, []byte("dump-test")) {
		t.Fatal("the dump does not contain the wrapped data key and its master key id")
	}

	forms := func(b []byte) map[string][]byte {
		return map[string][]byte{
			"raw":        b,
			"hex":        []byte(hex.EncodeToString(b)),
			"base64":     []byte(base64.StdEncoding.EncodeToString(b)),
			"base64 raw": []byte(base64.RawStdEncoding.EncodeToString(b)),
		}
	}
	for name, secret := range map[string][]byte{
		"the plaintext":                     plaintext,
		"part of the plaintext":             []byte("8675309"),
		"the master key":                    mk.key(mk.Current()),
		"the first half of the master key":  mk.key(mk.Current())[:16],
		"the second half of the master key": mk.key(mk.Current())[16:],
		"the data key":                      dataKey,
		"the first half of the data key":    dataKey[:16],
		"the second half of the data key":   dataKey[16:],
	} {
		for form, b := range forms(secret) {
			// bytea is dumped as lower-case hex; search case-blind anyway.
			if bytes.Contains(dump, b) || form == "hex" && bytes.Contains(lower, b) {
				t.Errorf("the dump contains %s (%s)", name, form)
			}
		}
	}
	if strings.Contains(string(dump), "Jane") {
		t.Error("the dump contains the patient's name")
	}
}
