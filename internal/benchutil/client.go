package benchutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/callroom/callroom/auth"
)

// NewHTTPClient returns a client that keeps enough idle connections for a
// few hundred concurrent requests to one host, so a load generator measures
// the server and not TCP handshakes.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// Client calls the API as one user. Its methods return errors rather than
// failing the benchmark, so goroutines may use them.
type Client struct {
	Base  string
	Token string
	User  auth.User
	HTTP  *http.Client
}

// Do sends a request with body (nil, raw JSON bytes, or a value to marshal)
// and returns the status and the whole answer.
func (c *Client) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// JSON sends a request, checks the status, and decodes the answer into out
// (which may be nil).
func (c *Client) JSON(ctx context.Context, want int, method, path string, body, out any) error {
	status, b, err := c.Do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Event is one server-sent event as a client saw it.
type Event struct {
	ID       string
	Type     string
	Data     []byte
	Received time.Time // when its last line was read
}

// Stream is an open GET /api/v1/events.
type Stream struct {
	Events <-chan Event // closed when the stream ends
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Stream opens the caller's event stream. It returns once the server has
// answered 200, which it does after subscribing: every event committed after
// Stream returns arrives on Events.
func (c *Client) Stream(ctx context.Context) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/api/v1/events", nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	// No client timeout: the stream lives until cancelled.
	hc := &http.Client{Transport: c.HTTP.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET /api/v1/events: status %d: %s", resp.StatusCode, b)
	}
	// The readers drain the channel as events come, so a small buffer is
	// enough. A large one is not free: the benchmark's streams live in the
	// server's process, and 20 streams of 1<<16 events were 100 MB of
	// pointers that every garbage collection marked, ~100 ms of a core
	// each time, which showed as stalls in the server's latencies.
	ch := make(chan Event, 1<<10)
	s := &Stream{Events: ch, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(ch)
		defer resp.Body.Close()
		s.err = readSSE(resp.Body, ch)
	}()
	return s, nil
}

// Close ends the stream and returns why it ended, if not because of Close.
func (s *Stream) Close() error {
	s.cancel()
	<-s.done
	if errors.Is(s.err, context.Canceled) {
		return nil
	}
	return s.err
}

func readSSE(r io.Reader, ch chan<- Event) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var e Event
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if e.Type != "" || e.Data != nil {
				e.Received = time.Now()
				ch <- e
			}
			e = Event{}
		case strings.HasPrefix(line, ":"): // a comment (ping)
		case strings.HasPrefix(line, "id: "):
			e.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.Type = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.Data = append(e.Data, line[6:]...)
		}
	}
}
