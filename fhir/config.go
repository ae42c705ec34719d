package fhir

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Flavor is how a subscription's notifications arrive.
type Flavor string

const (
	// RestHookEmpty: R4 rest-hook without payload; an empty POST means
	// "something matching changed", and callroom searches with _lastUpdated.
	RestHookEmpty Flavor = "rest-hook-empty"
	// RestHookPayload: R4 rest-hook with payload application/fhir+json; the
	// server PUTs the resource to [endpoint]/[type]/[id].
	RestHookPayload Flavor = "rest-hook-payload"
	// Backport: topic-based subscription of the Subscriptions R5 Backport
	// IG, R4 flavor: a history Bundle led by a SubscriptionStatus.
	Backport Flavor = "backport"
	// Medplum: the bare resource POSTed, with X-Medplum-* headers and an
	// X-Signature (hex HMAC-SHA256 of the body).
	Medplum Flavor = "medplum"
	// Poll: for EHRs without subscriptions, callroom searches with
	// _lastUpdated every Interval. Nothing calls back.
	Poll Flavor = "poll"
)

// Subscription is one subscription callroom registers on the EHR and
// accepts notifications for, at /fhir/hooks/{Name}.
type Subscription struct {
	Name   string `json:"name"`
	Flavor Flavor `json:"flavor"`
	// Criteria is what the subscription watches, e.g. "Encounter?status=in-progress"
	// or "CareTeam"; for Backport, the filter criteria of Topic.
	Criteria string `json:"criteria"`
	// Topic is the SubscriptionTopic canonical URL (Backport only).
	Topic string `json:"topic,omitempty"`
	// Secret authenticates the EHR: sent by it in the header SecretHeader
	// (default X-Callroom-Secret, configured on the Subscription's
	// channel.header), or used as the HMAC-SHA256 key of X-Signature
	// (Medplum, and any flavor whose server signs).
	Secret       string `json:"secret"`
	SecretHeader string `json:"secret_header,omitempty"`
	// Content is what a Backport notification carries: id-only (default;
	// callroom reads each resource) or full-resource.
	Content string `json:"content,omitempty"`
	// Heartbeat is the Backport heartbeat period; a silence longer than two
	// is noted as missed and changes are searched, in case events were lost.
	Heartbeat time.Duration `json:"heartbeat,omitempty"`
	// Interval is how often a Poll subscription searches (default 1 min).
	Interval time.Duration `json:"interval,omitempty"`
}

var subscriptionName = regexp.MustCompile(`^[a-z0-9][a-z0-9\-]{0,63}$`)

// ResourceType is the type the subscription watches.
func (s Subscription) ResourceType() string {
	for i, c := range s.Criteria {
		if c == '?' {
			return s.Criteria[:i]
		}
	}
	return s.Criteria
}

func (s Subscription) check() error {
	if !subscriptionName.MatchString(s.Name) {
		return fmt.Errorf("fhir subscription %q: name must be 1-64 lowercase letters, digits and '-'", s.Name)
	}
	if !slices.Contains([]Flavor{RestHookEmpty, RestHookPayload, Backport, Medplum, Poll}, s.Flavor) {
		return fmt.Errorf("fhir subscription %s: flavor must be rest-hook-empty, rest-hook-payload, backport, medplum or poll", s.Name)
	}
	if !slices.Contains(handledTypes, s.ResourceType()) {
		return fmt.Errorf("fhir subscription %s: criteria must watch Encounter or CareTeam", s.Name)
	}
	if len(s.Secret) < 16 && s.Flavor != Poll {
		return fmt.Errorf("fhir subscription %s: secret must be at least 16 characters", s.Name)
	}
	if s.Flavor == Backport && s.Topic == "" {
		return fmt.Errorf("fhir subscription %s: a backport subscription needs its topic", s.Name)
	}
	return nil
}

// handledTypes are the resources callroom acts on.
var handledTypes = []string{"Encounter", "CareTeam"}

// Config is the EHR connection.
type Config struct {
	// BaseURL of the EHR's FHIR R4 endpoint, e.g. https://ehr.example.org/fhir/R4.
	BaseURL string
	// BearerToken, when set, is sent on every request (a static token).
	BearerToken string
	// SMART, when set, gets tokens by SMART Backend Services instead.
	SMART *SMART
	// Launch, when set, accepts SMART on FHIR EHR launches.
	Launch *Launch
	// Timeout bounds every call to the EHR (default 10 s).
	Timeout       time.Duration
	Subscriptions []Subscription
	// Tick is how often callroom checks polls and heartbeats (default 10 s).
	Tick time.Duration
	// Endpoint is callroom's public base for callbacks, e.g.
	// https://callroom.example.org; hooks are at Endpoint + /fhir/hooks/{name}.
	Endpoint string
	// DailyDigest writes each patient thread's messages of the day before
	// back as one Communication.
	DailyDigest bool
	// IdentifierSystem is the system of the identifiers on Communications
	// callroom writes (default IdentifierSystem).
	IdentifierSystem string
	// WritingBatches bounds the batches of notifications one instance
	// applies at once while it sends pages (default DefaultWritingBatches,
	// at most 64): more applies an EHR burst sooner but takes CPU and
	// connections from paging on the same machine; see Priority and
	// docs/PERFORMANCE.md.
	WritingBatches int
	// IdleWritingBatches bounds them while the instance sends no pages
	// (default DefaultIdleWritingBatches, or WritingBatches if that is
	// more; at most 64, at least WritingBatches). Equal to WritingBatches,
	// the cap is fixed.
	IdleWritingBatches int
}

// writingBatches returns the caps while paging and while idle, defaults
// applied.
func (c Config) writingBatches() (paging, idle int) {
	paging, idle = c.WritingBatches, c.IdleWritingBatches
	if paging <= 0 {
		paging = DefaultWritingBatches
	}
	if idle <= 0 {
		idle = max(DefaultIdleWritingBatches, paging)
	}
	return paging, idle
}

// Check reports the first configuration mistake.
func (c Config) Check() error {
	if c.BaseURL == "" {
		return fmt.Errorf("fhir: base URL is required")
	}
	if c.WritingBatches < 0 || c.WritingBatches > 64 {
		return fmt.Errorf("fhir: writing_batches %d: want 1 to 64 (or 0 for the default, %d)", c.WritingBatches, DefaultWritingBatches)
	}
	if c.IdleWritingBatches < 0 || c.IdleWritingBatches > 64 {
		return fmt.Errorf("fhir: writing_batches_idle %d: want 1 to 64 (or 0 for the default, %d)", c.IdleWritingBatches, DefaultIdleWritingBatches)
	}
	if paging, _ := c.writingBatches(); c.IdleWritingBatches > 0 && c.IdleWritingBatches < paging {
		return fmt.Errorf("fhir: writing_batches_idle %d: want at least writing_batches (%d)", c.IdleWritingBatches, paging)
	}
	seen := map[string]bool{}
	for _, s := range c.Subscriptions {
		if err := s.check(); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("fhir subscription %s: configured twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (c Config) subscription(name string) (Subscription, bool) {
	for _, s := range c.Subscriptions {
		if s.Name == name {
			return s, true
		}
	}
	return Subscription{}, false
}
