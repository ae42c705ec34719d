package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/events"
)

const (
	// sseRetry is the reconnect delay the stream asks clients to use.
	sseRetry = 2 * time.Second
	// ssePing keeps proxies and load balancers, which drop connections idle
	// for 30-60 s, from cutting a quiet stream.
	ssePing = 15 * time.Second
	// sseWriteTimeout ends a stream whose client stopped reading (its TCP
	// window full) instead of holding the goroutine and subscription for ever.
	sseWriteTimeout = 20 * time.Second
	// sseMaxLifetime bounds one stream. Credentials are checked when a stream
	// opens; ending it makes the client reconnect (seamlessly, with its
	// Last-Event-ID) and be checked again. See streamLifetime.
	sseMaxLifetime = time.Hour
)

// events streams the caller's events as server-sent events
// (GET /api/v1/events). Each event is
//
//	id: <seq>
//	event: <type>
//	data: {"seq":<seq>,"type":"<type>","at":"<RFC 3339>",...the event's data fields}
//
// The data fields are ids and codes only (page_id, priority, ...): a client
// fetches whatever changed through the ordinary API. A client reconnecting
// with Last-Event-ID (EventSource does this by itself) gets every event after
// it, in order, once; without one it starts at the current end of its stream.
// A "stream.reset" event means events it asked for no longer exist: reload
// state from the API.
//
// The stream ends when the client goes away, when this instance stops (the
// client reconnects to another), when the credential it was opened with is
// revoked, and after streamLifetime, so that a reconnect re-checks it.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := principal(r)
	if s.Events == nil {
		writeProblem(w, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the event stream is not available on this instance"})
		return
	}
	last, given, err := lastEventID(r)
	if err != nil {
		badRequest(w, "Last-Event-ID", err.Error())
		return
	}
	// Where the stream ends now, just after the credential was accepted: the
	// start for a client without Last-Event-ID, and what tells revokesCaller
	// that an older revoke-all event cannot concern this credential.
	opened, err := s.Events.CurrentSeq(ctx, p.User.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !given {
		last = opened
	}

	sub := s.Events.Subscribe(p.User.ID, last)
	defer sub.Close()
	defer s.Metrics.StreamOpened()()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	out := sseWriter{w: w, rc: http.NewResponseController(w)}
	if out.send(fmt.Appendf(nil, "retry: %d\n\n", sseRetry.Milliseconds())) != nil {
		return
	}

	end := time.Now().Add(s.streamLifetime())
	nextPing := time.Now().Add(ssePing)
	backoff := time.Duration(0)
	for {
		if time.Now().After(end) {
			return
		}
		deadline := nextPing
		if end.Before(deadline) {
			deadline = end
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		e, err := sub.Next(wctx)
		cancel()
		switch {
		case err == nil:
			backoff = 0
			msg, err := eventMessage(e)
			if err != nil {
				s.Log.Error("events: cannot encode an event", "type", e.Type, "seq", e.Seq, "err", err.Error())
				return
			}
			if out.send(msg) != nil {
				return
			}
			nextPing = time.Now().Add(ssePing)
			if f := s.Events.OnDelivered; f != nil && e.Type != events.TypeReset {
				f(ctx, e)
			}
			if e.Type == "session.revoked" && revokesCaller(e, p, opened) {
				return
			}
		case ctx.Err() != nil:
			return // the client went away
		case errors.Is(err, context.DeadlineExceeded):
			if out.send([]byte(": ping\n\n")) != nil {
				return
			}
			nextPing = time.Now().Add(ssePing)
		case errors.Is(err, events.ErrHubStopped), errors.Is(err, events.ErrClosed):
			return // shutting down: the client reconnects elsewhere
		default:
			// The database is unreachable (a restart, a failover). Keep the
			// stream open and retry: a browser's EventSource gives up for
			// good on a failed reconnect (a 503), but not on a slow stream.
			backoff = min(max(2*backoff, 250*time.Millisecond), 5*time.Second)
			s.Log.Warn("events: reading the stream failed; retrying", "err", err.Error(), "retry_in", backoff.String())
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// streamLifetime is how long one stream may run before the client must
// reconnect and re-authenticate. For browser sessions it is the idle
// timeout: a stream opened at t refreshed last_seen_at at most at t, so the
// reconnect at t+SessionIdle succeeds only if the user did something else
// meanwhile. An open tab therefore never keeps an idle session alive, and an
// idle-logged-off session's stream ends.
func (s *Server) streamLifetime() time.Duration {
	if s.Auth != nil && s.Auth.SessionIdle > 0 && s.Auth.SessionIdle < sseMaxLifetime {
		return s.Auth.SessionIdle
	}
	return sseMaxLifetime
}

// lastEventID reads where the client left off: the Last-Event-ID header, or
// the last_event_id query parameter for clients that cannot set headers.
func lastEventID(r *http.Request) (seq int64, given bool, err error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, false, nil
	}
	seq, err = strconv.ParseInt(v, 10, 64)
	if err != nil || seq < 0 {
		return 0, false, errors.New("must be the id of an event from this stream: a whole number, 0 or more")
	}
	return seq, true, nil
}

// eventMessage encodes e as one SSE message. The data line is the event's
// data object with seq, type and at added (Publish refuses data using those
// names), compacted so it holds no newline.
func eventMessage(e events.Event) ([]byte, error) {
	head, err := json.Marshal(struct {
		Seq  int64     `json:"seq"`
		Type string    `json:"type"`
		At   time.Time `json:"at"`
	}{e.Seq, e.Type, e.At.UTC()})
	if err != nil {
		return nil, err
	}
	var data bytes.Buffer
	data.Write(head[:len(head)-1]) // without the closing brace
	var fields bytes.Buffer
	if len(e.Data) > 0 {
		if err := json.Compact(&fields, e.Data); err != nil {
			return nil, err
		}
	}
	if f := fields.Bytes(); len(f) > 2 && f[0] == '{' && f[len(f)-1] == '}' {
		data.WriteByte(',')
		data.Write(f[1:])
	} else {
		data.WriteByte('}')
	}
	return fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data.Bytes()), nil
}

// revokesCaller reports whether a session.revoked event covers the
// credential this stream was opened with: it names the stream's session_id
// or token_id, or names neither (all of the user's credentials) and is newer
// than opened, the stream's end when the credential was checked. An older
// revoke-all, replayed from Last-Event-ID, cannot have revoked a credential
// that was accepted after it.
func revokesCaller(e events.Event, p auth.Principal, opened int64) bool {
	var d struct {
		SessionID string `json:"session_id"`
		TokenID   string `json:"token_id"`
	}
	if json.Unmarshal(e.Data, &d) != nil || d.SessionID == "" && d.TokenID == "" {
		return e.Seq > opened
	}
	return (d.SessionID != "" && d.SessionID == p.SessionID.String()) ||
		(d.TokenID != "" && d.TokenID == p.TokenID.String())
}

// sseWriter writes whole messages and flushes each at once. Each write gets
// its own deadline, so a client that stopped reading cannot block the stream
// for ever, and a server-wide WriteTimeout (which would otherwise cut every
// stream at a fixed age, over HTTP/1 and HTTP/2 alike) does not apply.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (o sseWriter) send(b []byte) error {
	o.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout)) //nolint:errcheck // unsupported by test recorders
	if _, err := o.w.Write(b); err != nil {
		return err
	}
	return o.rc.Flush()
}
