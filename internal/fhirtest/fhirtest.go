// Package fhirtest runs the test FHIR engine (scripts/fhir-engine: a real
// FHIR R4 server on Medplum's packages, with validation on writes and a
// notification sender for each subscription flavor) for a test, and gives a
// small client for it.
package fhirtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/pgtest"
)

// Engine is a running FHIR server.
type Engine struct {
	T   testing.TB
	URL string
}

// Start runs an engine until the test ends. It fails (it does not skip)
// when Node or the engine's npm packages are missing: scripts/test-deps.sh
// installs them, and `make test` runs it.
func Start(t testing.TB) *Engine {
	t.Helper()
	root, err := pgtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "scripts", "fhir-engine")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@medplum", "fhir-router")); err != nil {
		t.Fatalf("the test FHIR engine's packages are not installed in %s: run scripts/test-deps.sh (make test does)", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run scripts/test-deps.sh (make test does)")
	}
	cmd := exec.Command(node, "server.mjs", "0")
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
	})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		return &Engine{T: t, URL: "http://127.0.0.1:" + p}
	case <-time.After(90 * time.Second):
		t.Fatalf("the FHIR engine did not start in 90 s: %s", stderr.String())
	}
	return nil
}

// Do sends a request and decodes a JSON answer.
func (e *Engine) Do(method, path string, body any, header ...string) (int, map[string]any) {
	e.T.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				e.T.Fatal(err)
			}
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+"/"+strings.TrimLeft(path, "/"), r)
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(data) > 0 && data[0] == '{' {
		json.Unmarshal(data, &out) //nolint:errcheck
	}
	return resp.StatusCode, out
}

// Create creates resource and returns it as stored (with id), failing the
// test if the server refuses.
func (e *Engine) Create(resource map[string]any) map[string]any {
	e.T.Helper()
	status, out := e.Do("POST", resource["resourceType"].(string), resource)
	if status != 201 {
		e.T.Fatalf("creating a %s: %d %v", resource["resourceType"], status, out)
	}
	return out
}

// Update writes resource (with its id).
func (e *Engine) Update(resource map[string]any) map[string]any {
	e.T.Helper()
	status, out := e.Do("PUT", fmt.Sprintf("%s/%s", resource["resourceType"], resource["id"]), resource)
	if status != 200 && status != 201 {
		e.T.Fatalf("updating a %s: %d %v", resource["resourceType"], status, out)
	}
	return out
}

// Sent is one notification the engine sent.
type Sent struct {
	Subscription string `json:"subscription"`
	Flavor       string `json:"flavor"`
	Method       string `json:"method"`
	URL          string `json:"url"`
	Note         string `json:"note"`
	Status       int    `json:"status"`
	Answer       string `json:"answer"`
	Error        string `json:"error"`
}

// Sent waits for notifications in flight and returns all sent so far.
func (e *Engine) Sent() []Sent {
	e.T.Helper()
	e.Do("POST", "$test/flush", map[string]any{})
	req, _ := http.NewRequest("POST", e.URL+"/$test/sent", strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Sent
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.T.Fatal(err)
	}
	return out
}

// Control calls a test control (down, heartbeat, skip).
func (e *Engine) Control(name string, body map[string]any) map[string]any {
	e.T.Helper()
	status, out := e.Do("POST", "$test/"+name, body)
	if status != 200 {
		e.T.Fatalf("$test/%s: %d %v", name, status, out)
	}
	return out
}
