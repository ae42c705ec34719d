package web

import (
	"net/http"
	"strings"
	"testing"
)

// TestFrameCookie: over https the launch's cookies must survive a
// cross-site EHR iframe (SameSite=None, Partitioned, Secure); over http they
// stay Lax, which browsers accept.
func TestFrameCookie(t *testing.T) {
	for _, tc := range []struct {
		secure bool
		want   []string
		not    []string
	}{
		{true, []string{"HttpOnly", "Secure", "SameSite=None", "Partitioned"}, []string{"SameSite=Lax"}},
		{false, []string{"HttpOnly", "SameSite=Lax"}, []string{"Secure", "SameSite=None", "Partitioned"}},
	} {
		c := &client{o: Options{SecureCookies: tc.secure}}
		line := c.frameCookie(&http.Cookie{Name: "callroom_session", Value: "x", Path: "/"}).String()
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("secure=%v: %q lacks %s", tc.secure, line, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(line, n) {
				t.Errorf("secure=%v: %q has %s", tc.secure, line, n)
			}
		}
	}
}
