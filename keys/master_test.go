package keys_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/keys"
)

func TestLoadMasterKeys(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	good2 := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	short := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcde")) // 31 bytes
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A good file: comments and blank lines skipped, CRLF tolerated, the last key current.
	mk := load(t, write("good", "# keys\n\na "+good+"\r\nb "+strings.TrimRight(good2, "=")+"\n"), "")
	if mk.Current() != "b" || strings.Join(mk.IDs(), ",") != "a,b" || !mk.Has("a") || mk.Has("c") {
		t.Fatalf("parsed %v", mk)
	}
	if mk := load(t, "", "  prod-7:"+good+"\n"); mk.Current() != "prod-7" {
		t.Fatalf("env with id: %v", mk)
	}
	if mk := load(t, "", good); mk.Current() != "env" {
		t.Fatalf("env without id: %v", mk)
	}

	for _, c := range []struct {
		name, file, env, want string
		is                    error
	}{
		{name: "nothing configured", is: keys.ErrNoMasterKey},
		{name: "both configured", file: write("both", "a "+good+"\n"), env: good, want: "use one"},
		{name: "missing file", file: filepath.Join(dir, "nope"), want: "does not exist"},
		{name: "empty file", file: write("empty", "# only a comment\n"), want: "holds no keys"},
		{name: "bad base64", file: write("b64", "a "+good[:20]+"!!"+good[22:]+"\n"), want: `line 1: key "a" is not valid base64`},
		{name: "wrong length", file: write("short", "a "+good+"\nb "+short+"\n"), want: `line 2: key "b" is 31 bytes, want 32`},
		{name: "duplicate id", file: write("dup", "a "+good+"\na "+good2+"\n"), want: `line 2: key id "a" appears twice`},
		{name: "fields swapped", file: write("swapped", good+" a\n"), want: "line 1: the key id must be"},
		{name: "key without id", file: write("noid", good+"\n"), want: "line 1: want"},
		{name: "three fields", file: write("three", "a "+good+" "+good2+"\n"), want: "found 3 fields"},
		{name: "env bad id", env: "bad id!:" + good, want: "key id before ':'"},
		{name: "env wrong length", env: "x:" + short, want: `CALLROOM_MASTER_KEY: key "x" is 31 bytes`},
		{name: "env bad base64", env: "x:" + good[:30] + "*", want: "not valid base64"},
	} {
		_, err := keys.LoadMasterKeys(c.file, c.env)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v", c.name, err, c.is)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q does not say %q", c.name, err, c.want)
		}
		assertNoKeyMaterial(t, c.name, err.Error(), good, good2, short)
	}
}

func TestGenerateMasterKeyLine(t *testing.T) {
	t.Parallel()
	line, err := keys.GenerateMasterKeyLine("k1")
	if err != nil {
		t.Fatal(err)
	}
	id, b64, ok := strings.Cut(line, " ")
	if raw, err := base64.StdEncoding.DecodeString(b64); !ok || id != "k1" || err != nil || len(raw) != 32 {
		t.Fatalf("line %q is not \"k1 <base64 of 32 bytes>\"", line)
	}
	other, _ := keys.GenerateMasterKeyLine("k1")
	if other == line {
		t.Fatal("two generated keys are equal")
	}
	for _, bad := range []string{"", "has space", "a:b", strings.Repeat("x", 65), "ü"} {
		if _, err := keys.GenerateMasterKeyLine(bad); err == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
	if id := keys.NewMasterKeyID(time.Date(2026, 11, 22, 15, 17, 24, 0, time.UTC)); id != "mk-20261122-151724" {
		t.Errorf("NewMasterKeyID = %q", id)
	}
}

func TestKeyFileCreateAndAppend(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new-dir")
	path := filepath.Join(dir, "master.keys")
	if err := keys.CreateKeyFile(path, "one"); err != nil {
		t.Fatal(err)
	}
	mode := func() os.FileMode {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(); m != 0o600 {
		t.Fatalf("new key file has mode %o, want 600", m)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created directory: %v, %v", fi.Mode(), err)
	}
	before, _ := os.ReadFile(path)

	// Never overwritten.
	err := keys.CreateKeyFile(path, "two")
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("CreateKeyFile over an existing file: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("existing key file changed")
	}

	// Appending keeps the old key, makes the new one current, keeps 0600
	// (even from a looser mode) and leaves no temporary file behind.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keys.AppendMasterKey(path, "two"); err != nil {
		t.Fatal(err)
	}
	mk := load(t, path, "")
	if strings.Join(mk.IDs(), ",") != "one,two" || mk.Current() != "two" {
		t.Fatalf("after append: %v", mk)
	}
	if keyLines(t, path)["one"] != keyLinesOf(t, before)["one"] {
		t.Fatal("append changed the old key")
	}
	if m := mode(); m != 0o600 {
		t.Fatalf("after append mode %o, want 600", m)
	}
	if err := keys.AppendMasterKey(path, "one"); err == nil {
		t.Fatal("appending a duplicate id succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key file", len(entries))
	}

	// Through a symlink, the file is replaced and the link kept.
	link := filepath.Join(t.TempDir(), "link.keys")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if err := keys.AppendMasterKey(link, "three"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("symlink replaced by a file")
	}
	if load(t, path, "").Current() != "three" {
		t.Fatal("append through a symlink did not reach the file")
	}

	// A damaged file is refused, and left as it was.
	broken := filepath.Join(t.TempDir(), "broken.keys")
	os.WriteFile(broken, []byte("one not-base64\n"), 0o600) //nolint:errcheck
	if err := keys.AppendMasterKey(broken, "two"); err == nil {
		t.Fatal("appended to a damaged key file")
	}
	if b, _ := os.ReadFile(broken); string(b) != "one not-base64\n" {
		t.Fatal("damaged key file changed")
	}
}

func keyLinesOf(t *testing.T, b []byte) map[string]string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyLines(t, p)
}
