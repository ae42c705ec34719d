package peer_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/peer"
)

// TestTransportKeepsConnectionsOpen: 20 callers making 5 rounds of calls
// at once open about 20 connections, not one per call beyond the second as
// http.DefaultTransport does.
func TestTransportKeepsConnectionsOpen(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
		maxConns  int64
	}{
		{"peer", peer.Transport(32), 20},
		// The reason for the package: this fails with DefaultTransport's
		// 2 idle connections per host.
		{"default", http.DefaultTransport.(*http.Transport).Clone(), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opened atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(5 * time.Millisecond) // the calls overlap
				w.Write([]byte("ok"))            //nolint:errcheck
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			client := &http.Client{Transport: tc.transport}
			const callers, rounds = 20, 5
			for range rounds {
				var wg sync.WaitGroup
				for range callers {
					wg.Go(func() {
						resp, err := client.Get(srv.URL)
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body) //nolint:errcheck
						resp.Body.Close()
					})
				}
				wg.Wait()
			}
			n := opened.Load()
			t.Logf("%d calls, %d connections", callers*rounds, n)
			if tc.maxConns > 0 && n > tc.maxConns {
				t.Errorf("%d connections for %d callers: connections were not kept", n, callers)
			}
			if tc.maxConns < 0 && n <= callers {
				t.Errorf("DefaultTransport kept %d connections for %d callers; the test no longer shows why peer exists", n, callers)
			}
		})
	}
}
