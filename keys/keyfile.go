package keys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

const keyFileHeader = `# callroom master keys, one a line: "<key-id> <base64 of 32 bytes>".
# The last key is current. Keep older keys until 'callroom keys rotate' (or
# 'callroom keys rewrap') has finished and every instance has this file.
`

// CreateKeyFile writes a new key file at path holding one new master key
// named id, with mode 0600, creating missing parent directories with mode
// 0700. It refuses to replace an existing file: overwriting a key file
// loses the keys that unwrap the data keys, and with them every message.
func CreateKeyFile(path, id string) error {
	line, err := GenerateMasterKeyLine(id)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting a master key file (use 'callroom keys rotate' to add a key)", path)
	}
	if err != nil {
		return err
	}
	_, err = f.WriteString(keyFileHeader + line + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) //nolint:errcheck // a half-written key file must not be mistaken for a good one
		return err
	}
	return syncDir(dir)
}

// AppendMasterKey adds a new master key named id at the end of the key file
// at path, making it the current key. The file is replaced atomically (a
// temporary file is written, synced and renamed over it), so a crash leaves
// either the old file or the new one, never a truncated one; it keeps its
// owner when the caller may set it, and gets mode 0600. The existing file
// must parse, so a damaged file is not made worse.
func AppendMasterKey(path, id string) error {
	real, err := filepath.EvalSymlinks(path) // replace the file, not a symlink to it
	if err != nil {
		return fmt.Errorf("master key file: %w", err)
	}
	old, err := os.ReadFile(real)
	if err != nil {
		return fmt.Errorf("master key file: %w", err)
	}
	mk, err := parseKeyFile(old)
	if err != nil {
		return fmt.Errorf("master key file %s: %w", path, err)
	}
	if mk.Has(id) {
		return fmt.Errorf("master key file %s already has a key %q; choose another id", path, id)
	}
	line, err := GenerateMasterKeyLine(id)
	if err != nil {
		return err
	}
	content := old
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	content = append(content, line+"\n"...)
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	return replaceFile(real, content, fi)
}

func replaceFile(path string, content []byte, old os.FileInfo) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()      //nolint:errcheck
			os.Remove(tmp) //nolint:errcheck
		}
	}()
	keepOwner(f, old)
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(content); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a new or renamed directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
