package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// forwardedFor takes the client's address from X-Forwarded-For when the
// request comes from a trusted proxy (TrustedProxies), so that rate limits,
// sessions and the audit trail see the person's address rather than the load
// balancer's. It walks the header from the right and stops at the first
// address that is not a trusted proxy: the leftmost entries are whatever the
// client chose to send. From anyone else the header is ignored.
func (s *Server) forwardedFor(next http.Handler) http.Handler {
	if len(s.TrustedProxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer, ok := s.trusted(r.RemoteAddr); ok {
			client := peer
			hops := r.Header.Values("X-Forwarded-For")
		walk:
			for i := len(hops) - 1; i >= 0; i-- {
				parts := strings.Split(hops[i], ",")
				for j := len(parts) - 1; j >= 0; j-- {
					a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
					if err != nil {
						break walk // a malformed hop: stop at the last good one
					}
					client = a.Unmap()
					if !s.trustedAddr(client) {
						break walk
					}
				}
			}
			r2 := *r
			r2.RemoteAddr = net.JoinHostPort(client.String(), "0")
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) trusted(remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	return a, s.trustedAddr(a)
}

func (s *Server) trustedAddr(a netip.Addr) bool {
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma- or space-separated list of addresses
// and CIDR prefixes.
func ParseTrustedProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %q is not an address or a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
