package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestForwardedFor: X-Forwarded-For is believed only from a trusted proxy,
// and only back to the first address that is not one.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,lb.example.org"); err == nil {
		t.Error("a host name was accepted as a proxy")
	}
	var seen string
	s := &Server{TrustedProxies: proxies}
	h := s.forwardedFor(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = clientAddr(r) }))
	for _, tc := range []struct {
		name, remote, xff, want string
	}{
		{"direct client, header ignored", "203.0.113.9:5000", "198.51.100.7", "203.0.113.9"},
		{"through the proxy", "10.1.2.3:5000", "198.51.100.7", "198.51.100.7"},
		{"spoofed left entries skipped", "10.1.2.3:5000", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7"},
		{"two headers", "192.0.2.1:5000", "6.6.6.6, 198.51.100.7|10.2.2.2", "198.51.100.7"},
		{"garbage stops the walk", "10.1.2.3:5000", "198.51.100.7, nonsense", "10.1.2.3"},
		{"no header", "10.1.2.3:5000", "", "10.1.2.3"},
		{"IPv6 client", "10.1.2.3:5000", "2001:db8::7", "2001:db8::7"},
	} {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.RemoteAddr = tc.remote
		for _, v := range strings.Split(tc.xff, "|") {
			if v != "" {
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen != tc.want {
			t.Errorf("%s: client %q, want %q", tc.name, seen, tc.want)
		}
	}
}
