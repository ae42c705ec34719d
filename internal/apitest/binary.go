package apitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/pgtest"
)

var binary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// Binary builds ./cmd/callroom once per test process and returns its path,
// for tests that run 'callroom serve' as a real process (kill -9, several
// instances). Building once instead of once per test saves a build per
// test. The build outlives the test that asked first, so no test cleanup
// removes it: it stays in a callroom-bin-* temporary directory, and each
// process removes the ones earlier processes left more than an hour ago.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		root, err := pgtest.RepoRoot()
		if err != nil {
			binary.err = err
			return
		}
		removeStaleBinaries()
		dir, err := os.MkdirTemp("", "callroom-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "callroom")
		build := exec.Command("go", "build", "-o", binary.path, "./cmd/callroom")
		build.Dir = root
		binary.out, binary.err = build.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build ./cmd/callroom: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// removeStaleBinaries removes builds earlier test processes left behind.
func removeStaleBinaries() {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "callroom-bin-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(d) //nolint:errcheck // best effort
		}
	}
}
