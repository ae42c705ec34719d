package keys

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// KeySize is the size of master and data keys: AES-256.
const KeySize = 32

// ErrNoMasterKey means neither a key file nor CALLROOM_MASTER_KEY was given.
var ErrNoMasterKey = errors.New("no master key: set CALLROOM_MASTER_KEY_FILE (create one with 'callroom keys init --file PATH') or CALLROOM_MASTER_KEY")

// MasterKeys are the master keys an instance holds: the current one, which
// wraps new data keys, and older ones, which still unwrap data keys not yet
// re-wrapped. It prints only key ids, never key material, so it is safe to
// log by accident.
type MasterKeys struct {
	ids  []string // in file order; the last is current
	keys map[string][]byte
}

// LoadMasterKeys reads the master keys from the key file at path file, or,
// when file is empty, from env, the value of CALLROOM_MASTER_KEY
// ("<key-id>:<base64>" or "<base64>", id "env"). Setting both is refused:
// which key is current would be a guess, and a guess here means data
// keys wrapped by a key that some instances do not have.
//
// Errors name the file, line and key id but never include key material,
// even when a line is malformed.
func LoadMasterKeys(file, env string) (*MasterKeys, error) {
	env = strings.TrimSpace(env)
	switch {
	case file != "" && env != "":
		return nil, errors.New("both CALLROOM_MASTER_KEY_FILE and CALLROOM_MASTER_KEY are set: use one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("master key file %s does not exist (create one with 'callroom keys init --file %s')", file, file)
			}
			return nil, fmt.Errorf("master key file: %w", err)
		}
		mk, err := parseKeyFile(b)
		if err != nil {
			return nil, fmt.Errorf("master key file %s: %w", file, err)
		}
		return mk, nil
	case env != "":
		id, b64 := "env", env
		if i := strings.IndexByte(env, ':'); i >= 0 { // ':' is not in the base64 alphabet
			id, b64 = env[:i], env[i+1:]
		}
		if !validID(id) {
			return nil, fmt.Errorf("CALLROOM_MASTER_KEY: the key id before ':' must be %s", idRule)
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("CALLROOM_MASTER_KEY: key %q %w", id, err)
		}
		return &MasterKeys{ids: []string{id}, keys: map[string][]byte{id: key}}, nil
	}
	return nil, ErrNoMasterKey
}

func parseKeyFile(b []byte) (*MasterKeys, error) {
	mk := &MasterKeys{keys: map[string][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		// The fields are not echoed: a malformed line may be key material.
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"<key-id> <base64 key>\", found %d fields", n, len(f))
		}
		id := f[0]
		if !validID(id) {
			return nil, fmt.Errorf("line %d: the key id must be %s", n, idRule)
		}
		if _, dup := mk.keys[id]; dup {
			return nil, fmt.Errorf("line %d: key id %q appears twice; ids name keys in the database and must be unique", n, id)
		}
		key, err := decodeKey(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q %w", n, id, err)
		}
		mk.ids = append(mk.ids, id)
		mk.keys[id] = key
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(mk.ids) == 0 {
		return nil, errors.New("holds no keys")
	}
	return mk, nil
}

// decodeKey's errors complete a sentence starting "key <id> ".
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if key, err2 = base64.RawStdEncoding.DecodeString(s); err2 != nil {
			return nil, errors.New("is not valid base64")
		}
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	return key, nil
}

const idRule = "1-64 characters of A-Z a-z 0-9 . _ -"

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// GenerateMasterKeyLine returns a key file line "<id> <base64>" holding a new
// random master key, without a trailing newline.
func GenerateMasterKeyLine(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("master key id must be %s", idRule)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return id + " " + base64.StdEncoding.EncodeToString(key), nil
}

// NewMasterKeyID names a master key after the time it is made, so the ids in
// a key file sort by age and tell an operator which key is older.
func NewMasterKeyID(now time.Time) string {
	return "mk-" + now.UTC().Format("20060102-150405")
}

// Current is the id of the key that wraps new data keys.
func (m *MasterKeys) Current() string { return m.ids[len(m.ids)-1] }

// IDs lists the key ids, oldest first; the last is Current.
func (m *MasterKeys) IDs() []string { return append([]string(nil), m.ids...) }

// Has reports whether the key id is held.
func (m *MasterKeys) Has(id string) bool { _, ok := m.keys[id]; return ok }

func (m *MasterKeys) key(id string) []byte { return m.keys[id] }

// String lists the key ids, never the keys.
func (m MasterKeys) String() string {
	if len(m.ids) == 0 {
		return "MasterKeys{}"
	}
	return fmt.Sprintf("MasterKeys{ids: %s, current: %s}", strings.Join(m.ids, ","), m.ids[len(m.ids)-1])
}

// Format makes every verb (%v, %+v, %#v, %x, %d...) print String, so no
// format string can print key material. Value receivers, so a dereferenced
// MasterKeys is covered too.
func (m MasterKeys) Format(f fmt.State, _ rune) { fmt.Fprint(f, m.String()) }
