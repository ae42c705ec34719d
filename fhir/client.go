package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/internal/peer"
)

// Client talks to the EHR's FHIR server. Every call has a timeout.
type Client struct {
	base   string
	token  string
	tokens *tokenSource // SMART Backend Services, when configured
	http   *http.Client
}

// NewClient returns a client for cfg.
func NewClient(cfg Config) *Client {
	t := cfg.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	// The fhir and ehr queues' workers (30) call the EHR at once.
	c := &Client{base: strings.TrimRight(cfg.BaseURL, "/"), token: cfg.BearerToken,
		http: &http.Client{Timeout: t, Transport: peer.Transport(32)}}
	if cfg.SMART != nil {
		c.tokens = &tokenSource{cfg: *cfg.SMART, base: c.base, http: c.http, now: time.Now}
	}
	return c
}

// maxResource bounds what callroom reads or accepts as one resource or page.
const maxResource = 5 << 20

// ServerError is a FHIR server's refusal: its status and OperationOutcome.
type ServerError struct {
	Status  int
	Outcome string // diagnostics, no PHI expected
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("fhir server answered %d: %s", e.Status, e.Outcome)
}

// Temporary reports whether a retry may succeed (the server is down, busy
// or rate limiting).
func (e *ServerError) Temporary() bool {
	return e.Status == 0 || e.Status == 408 || e.Status == 429 || e.Status >= 500
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, header http.Header) (int, http.Header, []byte, error) {
	status, h, data, err := c.try(ctx, method, path, body, header)
	if status == http.StatusUnauthorized && c.tokens != nil {
		// The token was revoked or expired early: get a new one, once.
		c.tokens.forget(c.lastToken(h))
		status, h, data, err = c.try(ctx, method, path, body, header)
	}
	return status, h, data, err
}

func (c *Client) lastToken(h http.Header) string { return h.Get("X-Callroom-Token-Used") }

func (c *Client) try(ctx context.Context, method, path string, body []byte, header http.Header) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/"+strings.TrimLeft(path, "/"), r)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	token := c.token
	if c.tokens != nil {
		if token, err = c.tokens.Token(ctx); err != nil {
			return 0, nil, nil, err
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL may carry search parameters with identifiers: say only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, nil, &ServerError{Status: 0, Outcome: fmt.Sprintf("%s %s: %v", method, strings.SplitN(path, "?", 2)[0], err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResource+1))
	if err != nil {
		return 0, nil, nil, &ServerError{Outcome: "reading the answer: " + err.Error()}
	}
	if len(data) > maxResource {
		return 0, nil, nil, fmt.Errorf("fhir: answer to %s %s is larger than 5 MiB", method, strings.SplitN(path, "?", 2)[0])
	}
	if resp.StatusCode >= 300 {
		// Remember which token was refused, so only that one is forgotten.
		resp.Header.Set("X-Callroom-Token-Used", token)
		return resp.StatusCode, resp.Header, data, &ServerError{Status: resp.StatusCode, Outcome: outcomeText(data)}
	}
	return resp.StatusCode, resp.Header, data, nil
}

// outcomeText is the diagnostics of an OperationOutcome, short.
func outcomeText(data []byte) string {
	var oo struct {
		Issue []struct {
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(data, &oo) != nil || len(oo.Issue) == 0 {
		return "no OperationOutcome"
	}
	var parts []string
	for _, i := range oo.Issue {
		t := i.Diagnostics
		if t == "" {
			t = i.Details.Text
		}
		parts = append(parts, i.Code+": "+t)
	}
	s := strings.Join(parts, "; ")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// Read returns the resource typ/id as raw JSON, checked to be a typ.
func (c *Client) Read(ctx context.Context, typ, id string) (json.RawMessage, error) {
	_, _, data, err := c.do(ctx, http.MethodGet, typ+"/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return nil, err
	}
	got, err := resourceTypeOf(data)
	if err != nil {
		return nil, err
	}
	if got != typ {
		return nil, fmt.Errorf("fhir: reading %s/%s returned a %s", typ, id, got)
	}
	return data, nil
}

// ReadReference reads a literal reference "Type/id".
func (c *Client) ReadReference(ctx context.Context, ref string) (json.RawMessage, error) {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok || typ == "" || id == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("fhir: %q is not a literal reference Type/id", ref)
	}
	return c.Read(ctx, typ, id)
}

// maxSearchPages bounds how many pages one search follows.
const maxSearchPages = 50

// Search returns the matching resources of type typ (search mode "match"
// only), following next links.
func (c *Client) Search(ctx context.Context, typ string, params url.Values) ([]json.RawMessage, error) {
	path := typ + "?" + params.Encode()
	var out []json.RawMessage
	for page := 0; path != "" && page < maxSearchPages; page++ {
		_, _, data, err := c.do(ctx, http.MethodGet, path, nil, nil)
		if err != nil {
			return nil, err
		}
		b, err := decodeBundle(data, models.BundleTypeSearchset)
		if err != nil {
			return nil, err
		}
		for _, e := range b.Entry {
			if len(e.Resource) == 0 || (e.Search != nil && e.Search.Mode != nil && *e.Search.Mode != models.SearchEntryModeMatch) {
				continue
			}
			got, err := resourceTypeOf(e.Resource)
			if err != nil {
				return nil, err
			}
			if got == typ {
				out = append(out, e.Resource)
			}
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" && strings.HasPrefix(l.Url, c.base+"/") {
				path = strings.TrimPrefix(l.Url, c.base+"/")
			}
		}
	}
	return out, nil
}

// Create posts resource (JSON built by callroom) to typ; with ifNoneExist
// ("identifier=system|value") a resource already matching is not created
// again. It returns the id of the created or existing resource.
func (c *Client) Create(ctx context.Context, typ string, resource []byte, ifNoneExist string) (string, error) {
	h := http.Header{}
	if ifNoneExist != "" {
		h.Set("If-None-Exist", ifNoneExist)
	}
	h.Set("Prefer", "return=representation")
	_, _, data, err := c.do(ctx, http.MethodPost, typ, resource, h)
	if err != nil {
		return "", err
	}
	var r struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if json.Unmarshal(data, &r) != nil || r.ResourceType != typ {
		return "", nil // created; the server did not return it
	}
	return r.ID, nil
}
