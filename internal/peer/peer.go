// Package peer makes the HTTP transports callroom uses to call one other
// system many times at once: the EHR's FHIR server, an SMS or pager gateway.
package peer

import "net/http"

// Transport returns a transport for calls to one host, keeping up to
// concurrent connections to it open between calls.
//
// Why: http.DefaultTransport keeps 2 idle connections per host. With 10 to
// 30 River workers calling the same EHR or gateway at once, every call
// beyond the second closed its connection afterwards and the next one
// dialled (and, over https, handshook) again: in a burst from the EHR, the
// patient reads dialled a new connection per read (docs/PERFORMANCE.md).
// Everything else (proxy from the environment, HTTP/2, dial and TLS
// timeouts) is DefaultTransport's.
func Transport(concurrent int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = concurrent
	t.MaxIdleConns = max(t.MaxIdleConns, concurrent)
	return t
}
