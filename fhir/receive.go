package fhir

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/worker"
)

// MaxNotification is the largest notification body accepted.
const MaxNotification = maxResource

// Incoming is one notification as it arrived at /fhir/hooks/{Subscription}.
type Incoming struct {
	Subscription string
	Method       string
	// Path is what follows the subscription in the URL: "" or, for a
	// rest-hook with payload, "Type/id".
	Path       string
	Header     func(name string) string
	Body       []byte
	ClientAddr string
}

// Answer is what the EHR is told.
type Answer struct {
	NotificationID uuid.UUID `json:"notification_id,omitempty"`
	// Duplicate: the same notification was received before; nothing new.
	Duplicate bool `json:"duplicate,omitempty"`
	// Kind: event-notification, handshake, heartbeat, resource or changed.
	Kind string `json:"kind"`
}

func notificationAAD(id uuid.UUID) []byte { return []byte("fhir_notification:" + id.String()) }

// Accept authenticates and checks a notification, and records it with a
// River job in one transaction. A *Rejection says why one is refused; a bad
// secret or signature is audited.
func (s *Store) Accept(ctx context.Context, in Incoming) (Answer, error) {
	sub, ok := s.cfg.subscription(in.Subscription)
	if !ok {
		return Answer{}, reject(404, "not-found", "no subscription %q is configured", in.Subscription)
	}
	if reason := authenticate(sub, in); reason != "" {
		if err := audit.Record(ctx, s.db, audit.Actor{ClientAddr: in.ClientAddr}, audit.Entry{Action: "fhir.notification",
			ObjectType: "fhir_subscription", ObjectID: sub.Name, Outcome: audit.Denied,
			Details: map[string]any{"reason": reason, "flavor": sub.Flavor}}); err != nil {
			return Answer{}, err
		}
		return Answer{}, reject(401, "security", "%s", reason)
	}
	if len(in.Body) > MaxNotification {
		return Answer{}, reject(413, "too-long", "notification is larger than 5 MiB")
	}
	n := notification{subscription: sub, body: in.Body}
	switch sub.Flavor {
	case Poll:
		return Answer{}, reject(404, "not-found", "subscription %q is polled; nothing calls it back", sub.Name)
	case RestHookEmpty:
		if in.Method != "POST" || in.Path != "" {
			return Answer{}, reject(405, "not-supported", "a rest-hook without payload is an empty POST to the subscription's endpoint")
		}
		// Every empty notification is new: a random digest, never a duplicate.
		n.body = nil
		n.digestSalt = make([]byte, 16)
		rand.Read(n.digestSalt)
		n.kind = "changed"
	case RestHookPayload, Medplum:
		if err := n.checkResource(in); err != nil {
			return Answer{}, err
		}
	case Backport:
		if in.Method != "POST" || in.Path != "" {
			return Answer{}, reject(405, "not-supported", "a topic-based notification is a Bundle POSTed to the subscription's endpoint")
		}
		if err := n.checkBundle(); err != nil {
			return Answer{}, err
		}
		if n.kind == "handshake" || n.kind == "heartbeat" {
			return Answer{Kind: n.kind}, s.noteStatus(ctx, sub, n)
		}
	}
	return s.record(ctx, n, in)
}

type notification struct {
	subscription Subscription
	body         []byte
	digestSalt   []byte
	kind         string
	resourceType string
	resourceID   string
	events       []int64 // backport event numbers carried
	eventsSince  int64
	deleted      bool // the resource was deleted (Medplum)
}

// authenticate returns why the caller is refused, or "".
func authenticate(sub Subscription, in Incoming) string {
	if sig := in.Header("X-Signature"); sig != "" {
		mac := hmac.New(sha256.New, []byte(sub.Secret))
		mac.Write(in.Body)
		want := mac.Sum(nil)
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !hmac.Equal(got, want) {
			return "X-Signature does not match the body"
		}
		return ""
	}
	if sub.Flavor == Medplum {
		return "X-Signature is required"
	}
	h := sub.SecretHeader
	if h == "" {
		h = "X-Callroom-Secret"
	}
	got := in.Header(h)
	if got == "" {
		return h + " is required"
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(sub.Secret)) != 1 {
		return h + " is wrong"
	}
	return ""
}

func (n *notification) checkResource(in Incoming) error {
	want := n.subscription.ResourceType()
	if n.subscription.Flavor == RestHookPayload {
		if in.Method != "PUT" {
			return reject(405, "not-supported", "a rest-hook with payload PUTs the resource to [endpoint]/[type]/[id]")
		}
	} else if in.Method != "POST" || in.Path != "" {
		return reject(405, "not-supported", "a Medplum notification POSTs the resource to the subscription's endpoint")
	}
	if isJSONEmpty(in.Body) {
		return reject(400, "required", "the notification carries no resource")
	}
	typ, err := resourceTypeOf(in.Body)
	if err != nil {
		return err
	}
	if typ != want {
		return reject(422, "not-supported", "this subscription receives %s resources, not %s", want, typ)
	}
	id, err := checkHandled(typ, in.Body)
	if err != nil {
		return err
	}
	if n.subscription.Flavor == RestHookPayload {
		pt, pid, _ := strings.Cut(in.Path, "/")
		if pt != typ || pid != id {
			return reject(422, "invalid", "the URL names %s/%s but the body is %s/%s", pt, pid, typ, id)
		}
	}
	n.kind, n.resourceType, n.resourceID = "resource", typ, id
	if n.subscription.Flavor == Medplum && strings.EqualFold(in.Header("X-Medplum-Interaction"), "delete") {
		n.kind, n.deleted = "deleted", true
	}
	return nil
}

// checkHandled decodes a resource callroom acts on, so a malformed one is
// refused at the door, and returns its id.
func checkHandled(typ string, raw []byte) (string, error) {
	switch typ {
	case "Encounter":
		e, _, err := decodeEncounter(raw)
		return str(e.Id), err
	case "CareTeam":
		c, _, err := decodeCareTeam(raw)
		return str(c.Id), err
	}
	return "", reject(422, "not-supported", "callroom does not act on %s resources", typ)
}

// checkBundle checks a Backport notification: a history Bundle whose first
// entry is the SubscriptionStatus (Parameters in R4).
func (n *notification) checkBundle() error {
	b, err := decodeBundle(n.body, models.BundleTypeHistory)
	if err != nil {
		return err
	}
	if len(b.Entry) == 0 || len(b.Entry[0].Resource) == 0 {
		return reject(422, "required", "the Bundle's first entry must be the SubscriptionStatus Parameters")
	}
	if t, err := resourceTypeOf(b.Entry[0].Resource); err != nil {
		return err
	} else if t != "Parameters" {
		return reject(422, "invalid", "the Bundle's first entry must be a Parameters (SubscriptionStatus), not a %s", t)
	}
	st, err := parseStatus(b.Entry[0].Resource)
	if err != nil {
		return err
	}
	n.kind, n.events, n.eventsSince = st.Type, st.EventNumbers, st.EventsSince
	switch st.Type {
	case "handshake", "heartbeat":
		return nil
	case "event-notification", "query-event":
	default:
		return reject(422, "not-supported", "notification type %q is not handled", st.Type)
	}
	want := n.subscription.ResourceType()
	for i, e := range b.Entry[1:] {
		if len(e.Resource) == 0 {
			if e.FullUrl == nil && (e.Request == nil || e.Request.Url == "") {
				return reject(422, "required", "entry %d has neither a resource nor a fullUrl", i+1)
			}
			continue
		}
		typ, err := resourceTypeOf(e.Resource)
		if err != nil {
			return err
		}
		if typ != want {
			return reject(422, "not-supported", "this subscription receives %s resources, not %s (entry %d)", want, typ, i+1)
		}
		if _, err := checkHandled(typ, e.Resource); err != nil {
			return err
		}
	}
	return nil
}

// subscriptionStatus is the part of a SubscriptionStatus callroom uses.
type subscriptionStatus struct {
	Type         string
	EventsSince  int64
	EventNumbers []int64
}

func parseStatus(raw []byte) (subscriptionStatus, error) {
	p, err := models.UnmarshalParameters(raw)
	if err != nil {
		return subscriptionStatus{}, reject(422, "structure", "the SubscriptionStatus is not a valid Parameters: %v", err)
	}
	var st subscriptionStatus
	for _, prm := range p.Parameter {
		switch prm.Name {
		case "type":
			st.Type = str(prm.ValueCode)
		case "events-since-subscription-start":
			v := str(prm.ValueString)
			if v == "" && prm.ValueUnsignedInt != nil {
				v = strconv.Itoa(*prm.ValueUnsignedInt)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return st, reject(422, "invalid", "events-since-subscription-start must be a count")
			}
			st.EventsSince = n
		case "notification-event":
			for _, part := range prm.Part {
				if part.Name != "event-number" {
					continue
				}
				v := str(part.ValueString)
				if v == "" && part.ValueUnsignedInt != nil {
					v = strconv.Itoa(*part.ValueUnsignedInt)
				}
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 1 {
					return st, reject(422, "invalid", "event-number must be a positive count")
				}
				st.EventNumbers = append(st.EventNumbers, n)
			}
		}
	}
	if st.Type == "" {
		return st, reject(422, "required", "the SubscriptionStatus has no type")
	}
	return st, nil
}

// noteStatus records a handshake or heartbeat.
func (s *Store) noteStatus(ctx context.Context, sub Subscription, n notification) error {
	_, err := s.db.Exec(ctx, `INSERT INTO fhir_subscription_state (subscription, last_heartbeat_at) VALUES ($1, now())
		ON CONFLICT (subscription) DO UPDATE SET last_heartbeat_at = now(), missed_heartbeats = 0, updated_at = now()`, sub.Name)
	if err == nil {
		s.log.Info("fhir subscription status", "subscription", sub.Name, "type", n.kind)
	}
	return err
}

// record stores n and its job in one transaction.
func (s *Store) record(ctx context.Context, n notification, in Incoming) (Answer, error) {
	h := sha256.New()
	h.Write([]byte(in.Method + " " + in.Path + " " + n.kind + "\n"))
	h.Write(n.body)
	h.Write(n.digestSalt)
	digest := h.Sum(nil)
	id := uuid.New()
	var blob []byte
	var keyID *uuid.UUID
	if len(n.body) > 0 {
		b, k, err := s.sealer.Seal(ctx, n.body, notificationAAD(id))
		if err != nil {
			return Answer{}, err
		}
		blob, keyID = b, &k
	}
	var eventNumber *int64
	if len(n.events) > 0 {
		eventNumber = &n.events[len(n.events)-1]
	}
	ans := Answer{NotificationID: id, Kind: n.kind}
	// One statement, committed on its own: the notification, the job that
	// processes it (unless the notification is a duplicate) and River's
	// wake-up for the job's queue. One round trip where a transaction with
	// River's insert took five, for every notification of a burst
	// (docs/PERFORMANCE.md).
	job, err := worker.NewJobInStatementFrom("n", ProcessArgs{NotificationID: id}, ProcessArgs{}.InsertOpts(), 11, time.Now())
	if err != nil {
		return Answer{}, err
	}
	var inserted []uuid.UUID
	err = s.accept(ctx, `WITH n AS (
			INSERT INTO fhir_notifications (id, subscription, flavor, digest, resource_type, resource_id, event_number, body, key_id, deleted)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (subscription, digest) DO NOTHING RETURNING id),
		job AS (`+job.SQL+`)
		SELECT id FROM n`,
		append([]any{id, n.subscription.Name, n.subscription.Flavor, digest, n.resourceType, n.resourceID, eventNumber, blob, keyID, n.deleted},
			job.Args...),
		func(rows pgx.Rows) (err error) {
			inserted, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		})
	if err != nil || len(inserted) == 1 {
		return ans, err
	}
	ans.Duplicate = true
	err = s.db.QueryRow(ctx, `SELECT id FROM fhir_notifications WHERE subscription = $1 AND digest = $2`,
		n.subscription.Name, digest).Scan(&ans.NotificationID)
	return ans, err
}

// ProcessArgs is the job that processes one notification.
type ProcessArgs struct {
	NotificationID uuid.UUID `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (ProcessArgs) Kind() string { return "fhir.process" }

// InsertOpts: the fhir queue, so EHR work never delays paging; retried with
// River's backoff while the EHR is down.
func (ProcessArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: worker.QueueFHIR, MaxAttempts: 20}
}
