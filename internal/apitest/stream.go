package apitest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Event is one server-sent event as a client sees it.
type Event struct {
	ID   string
	Type string
	Data map[string]any
	// Conn counts the stream connections so far (1 for the first).
	Conn int
}

// Follow reads the caller's event stream the way EventSource does: when the
// stream ends or cannot be opened, it reconnects after a short pause with
// Last-Event-ID, to bases[0], bases[1], ... in turn (one base per instance
// behind a load balancer). Events arrive on the channel until ctx ends.
//
// It returns once the first connection has been answered: the server
// answers after subscribing, so every event published after Follow returns
// arrives (a stream opened without Last-Event-ID starts at the present, and
// a page sent while it was still connecting was missed).
func (c *Client) Follow(ctx context.Context, bases ...string) <-chan Event {
	if len(bases) == 0 {
		bases = []string{c.Base}
	}
	out := make(chan Event, 1024)
	answered := make(chan struct{})
	go func() {
		defer close(out)
		last, conn := "", 0
		for i := 0; ctx.Err() == nil; i++ {
			conn++
			req, _ := http.NewRequestWithContext(ctx, "GET", bases[i%len(bases)]+"/api/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+c.Token)
			if last != "" {
				req.Header.Set("Last-Event-ID", last)
			}
			resp, err := http.DefaultClient.Do(req)
			if conn == 1 {
				close(answered)
			}
			if err == nil && resp.StatusCode == http.StatusOK {
				r := bufio.NewReader(resp.Body)
				var e Event
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						break
					}
					line = strings.TrimRight(line, "\n")
					switch {
					case strings.HasPrefix(line, "id: "):
						e.ID = line[4:]
					case strings.HasPrefix(line, "event: "):
						e.Type = line[7:]
					case strings.HasPrefix(line, "data: "):
						json.Unmarshal([]byte(line[6:]), &e.Data) //nolint:errcheck
					case line == "" && e.Type != "":
						e.Conn = conn
						last = e.ID
						select {
						case out <- e:
						case <-ctx.Done():
						}
						e = Event{}
					}
				}
			}
			if resp != nil {
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	select {
	case <-answered:
	case <-ctx.Done():
	}
	return out
}
