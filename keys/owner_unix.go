//go:build unix

package keys

import (
	"os"
	"syscall"
)

// keepOwner gives the replacement key file the old file's owner, so a
// rotation run as root does not leave a file the service user cannot read.
// Failing (the caller is not root) is ignored: the file then belongs to
// whoever ran the rotation, usually its owner already.
func keepOwner(f *os.File, old os.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		f.Chown(int(st.Uid), int(st.Gid)) //nolint:errcheck
	}
}
