package pgtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/migrations"
)

// Cluster is a private PostgreSQL server a test may stop and start (to see
// callroom ride through a database restart). It runs on a free loopback
// port, in a temporary directory, and is stopped when the test ends.
type Cluster struct {
	t    testing.TB
	bin  string
	data string
	// URL connects to its (migrated) callroom database.
	URL string
}

func clusterBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl) not found")
}

// asOwner runs a server binary as the postgres user when we are root:
// PostgreSQL refuses to run as root.
func asOwner(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// StartCluster creates and starts a private cluster with a migrated
// database named callroom. It takes a few seconds.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := clusterBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "callroom-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root needs a postgres user (scripts/postgres.sh creates it): %v", err)
		}
		os.Chmod(dir, 0o777) //nolint:errcheck
	}
	if out, err := asOwner(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := strings.Join([]string{"listen_addresses = '127.0.0.1'", "port = " + strconv.Itoa(port), "unix_socket_directories = ''",
		"max_connections = 100", "fsync = off", "synchronous_commit = off", "full_page_writes = off", "shared_buffers = 32MB", ""}, "\n")
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, conf) //nolint:errcheck
	f.Close()
	c := &Cluster{t: t, bin: bin, data: data, URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/callroom?sslmode=disable", port)}
	c.Start()
	t.Cleanup(func() { asOwner(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop").Run() }) //nolint:errcheck
	ctx := context.Background()
	admin, err := pg.Open(ctx, strings.Replace(c.URL, "/callroom?", "/postgres?", 1), pg.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE callroom")
	admin.Close()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Open(ctx, c.URL, pg.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrations.Apply(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return c
}

// Stop shuts the server down the way an operator restarting it would
// (pg_ctl -m fast: open sessions are ended).
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := asOwner(filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "-m", "fast", "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		c.t.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	start := time.Now()
	if out, err := asOwner(filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "-l", filepath.Join(c.data, "server.log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.data, "server.log"))
		c.t.Fatalf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	c.t.Logf("cluster started in %s", time.Since(start).Round(time.Millisecond))
}

// PgDump returns the pg_dump to dump a test database with, preferring the
// newest /usr/lib/postgresql/<v>/bin/pg_dump: pg_dump refuses servers newer
// than itself, and the Debian wrapper in /usr/bin may pick an older one. It
// fails the test when there is none: the PostgreSQL client comes with the
// server package scripts/postgres.sh installs.
func PgDump(t testing.TB) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	if p, err := exec.LookPath("pg_dump"); err == nil {
		found = append(found, p)
	}
	for _, p := range found {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	t.Fatal("pg_dump not found: install the PostgreSQL client (scripts/postgres.sh installs the server package, which has it)")
	return ""
}
