package keys_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/keys"
)

// Example seals a message's text before it is stored and opens it when it is
// read. The aad names the row and its version, so the blob cannot be moved to
// another message, or an old version put back, without failing to open. It
// needs a database, so it is compiled but not run; the package's tests make
// the same calls against one.
func Example() {
	ctx := context.Background()
	// Once per process, at startup: a wrong or missing key file stops the
	// instance here rather than at the first message.
	mk, err := keys.LoadMasterKeys(os.Getenv("CALLROOM_MASTER_KEY_FILE"), os.Getenv("CALLROOM_MASTER_KEY"))
	if err != nil {
		fmt.Println(err)
		return
	}
	pool, err := pg.Open(ctx, os.Getenv("DATABASE_URL"), pg.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	keyring, err := keys.NewKeyring(ctx, pool, mk)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Writing: seal, then store the blob and the data key id in the row.
	msgID, version := uuid.New(), 1
	aad := []byte(fmt.Sprintf("message:%s:%d", msgID, version))
	blob, keyID, err := keyring.Seal(ctx, []byte("Bed 12: K+ 6.8, please call"), aad)
	if err != nil {
		fmt.Println(err)
		return
	}
	// INSERT INTO messages (id, version, body, body_key_id) VALUES (msgID, version, blob, keyID)
	// where body_key_id uuid REFERENCES data_keys (id).
	_ = keyID

	// Reading: the same aad, rebuilt from the row's own id and version.
	text, err := keyring.Open(ctx, blob, aad)
	if err != nil {
		fmt.Println(err) // errors.Is(err, keys.ErrDecrypt): altered, or not this row's
		return
	}
	fmt.Println(string(text))
}

// Errors about master keys name the file, line and key id, never the key.
func ExampleLoadMasterKeys() {
	dir, _ := os.MkdirTemp("", "keys-example")
	defer os.RemoveAll(dir)
	file := dir + "/master.keys"
	os.WriteFile(file, []byte("mk-1 c2hvcnQga2V5IG1hdGVyaWFs\n"), 0o600) //nolint:errcheck

	_, err := keys.LoadMasterKeys(file, "")
	fmt.Println(strings.ReplaceAll(err.Error(), dir, "DIR"))
	_, err = keys.LoadMasterKeys("", "mk-2:c2hvcnQga2V5IG1hdGVyaWFs")
	fmt.Println(err)
	// Output:
	// master key file DIR/master.keys: line 1: key "mk-1" is 18 bytes, want 32 (AES-256)
	// CALLROOM_MASTER_KEY: key "mk-2" is 18 bytes, want 32 (AES-256)
}
