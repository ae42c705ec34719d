package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callroom/callroom/keys"
)

var ctx = context.Background()

// keyFile writes a key file holding new keys with the given ids, the last
// current, and returns its path.
func keyFile(t *testing.T, ids ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.keys")
	if err := keys.CreateKeyFile(path, ids[0]); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[1:] {
		if err := keys.AppendMasterKey(path, id); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func load(t *testing.T, file, env string) *keys.MasterKeys {
	t.Helper()
	mk, err := keys.LoadMasterKeys(file, env)
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

// keyLines returns the key file's keys as id -> base64.
func keyLines(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			out[f[0]] = f[1]
		}
	}
	return out
}

// onlyKey loads just one key of a key file, as an instance given only that
// key would.
func onlyKey(t *testing.T, path, id string) *keys.MasterKeys {
	t.Helper()
	b64, ok := keyLines(t, path)[id]
	if !ok {
		t.Fatalf("no key %q in %s", id, path)
	}
	return load(t, "", id+":"+b64)
}

// assertNoKeyMaterial fails if s contains any of the secrets (base64 key
// strings) in any form: base64 (any 8-character window of it), hex, or raw.
func assertNoKeyMaterial(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		for i := 0; i+8 <= len(sec); i++ {
			if strings.Contains(s, sec[i:i+8]) {
				t.Errorf("%s contains part of a key's base64 (%q...): %s", what, sec[i:i+8], s)
				break
			}
		}
		raw, err := base64.StdEncoding.DecodeString(sec)
		if err != nil || len(raw) < 8 {
			continue
		}
		h, lower := hex.EncodeToString(raw), strings.ToLower(s)
		for i := 0; i+8 <= len(raw); i++ {
			if strings.Contains(lower, h[2*i:2*i+16]) || bytes.Contains([]byte(s), raw[i:i+8]) {
				t.Errorf("%s contains part of a key in hex or raw form: %q", what, s)
				break
			}
		}
	}
}
