package mailgateway_test

import (
	"encoding/json"
	netmail "net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/smtptest"
	"github.com/callroom/callroom/mailgateway"
)

// replyFixture is a whole callroom with the gateway wired as `callroom
// serve` wires it: notification emails go out through a real relay with a
// reply address, and replies come back through the gateway.
type replyFixture struct {
	in     *apitest.Instance
	relay  *smtptest.Relay
	admin  *apitest.Client
	doctor *apitest.Client
	// doctorMail is where the doctor's notifications go; it differs from
	// their sign-in address on purpose.
	doctorMail string
	serviceID  string
}

func newReplyFixture(t *testing.T) *replyFixture {
	t.Helper()
	relay := smtptest.StartRelay(t)
	in := apitest.Start(t, apitest.Options{SMTPRelay: relay.Addr,
		Mail: &mailgateway.Config{Domains: []string{testDomain}, ReplySecret: testSecret}})
	f := &replyFixture{in: in, relay: relay, admin: in.User("Avery Admin", "admin"), doctor: in.User("Dr A", "physician"),
		doctorMail: "dr.a.phone@hospital.example.org"}
	m := f.doctor.Must(201, "POST", "/api/v1/users/"+f.doctor.User.ID.String()+"/contact-methods",
		map[string]any{"kind": "email", "label": "phone", "address": f.doctorMail})
	f.doctor.Must(201, "POST", "/api/v1/users/"+f.doctor.User.ID.String()+"/notification-rules",
		map[string]any{"contact_method_id": m["id"], "delay_seconds": 0})
	pol := f.admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 300, "targets": []any{map[string]any{"user_id": f.doctor.User.ID}}},
	}})
	svc := f.admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"], "email_alias": "cardiology"})
	f.serviceID = svc["id"].(string)
	return f
}

// page sends a page about a patient and returns its id and the Reply-To of
// the notification email the doctor got.
func (f *replyFixture) page(t *testing.T, nurse *apitest.Client) (pageID, replyTo string) {
	t.Helper()
	p := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": f.serviceID, "priority": "stat",
		"summary": "Chest pain bed 12", "patient_ref": "Patient/" + uuid.NewString()})
	pageID = p["id"].(string)
	var msg *netmail.Message
	m := f.relay.WaitMatch(t, "notification email of page "+pageID, 10*time.Second, func(m smtptest.Mail) bool {
		if !slices.Contains(m.To, f.doctorMail) {
			return false
		}
		var err error
		msg, err = netmail.ReadMessage(strings.NewReader(m.Data))
		return err == nil && msg.Header.Get("X-Callroom-Page") == pageID
	})
	rt, err := netmail.ParseAddress(msg.Header.Get("Reply-To"))
	if err != nil {
		t.Fatalf("notification Reply-To %q: %v", msg.Header.Get("Reply-To"), err)
	}
	if !strings.HasPrefix(rt.Address, "reply+") || !strings.HasSuffix(rt.Address, "@"+testDomain) {
		t.Fatalf("Reply-To = %q, want a reply address at %s", rt.Address, testDomain)
	}
	if strings.Contains(m.Data, "Chest pain") {
		t.Fatal("the notification email carries the page text")
	}
	return pageID, rt.Address
}

func TestReplyToNotificationEmail(t *testing.T) {
	t.Parallel()
	f := newReplyFixture(t)
	nurse := f.in.User("Nurse N", "nurse")
	pageID, replyTo := f.page(t, nurse)

	// Text that is not a command lands in the patient's thread, as a reply
	// to the page, from the doctor.
	mustSend(t, f.in.MailAddr, mail{From: f.doctorMail, To: []string{replyTo}, Subject: "Re: [STAT] Page from callroom",
		Body: "On my way, 5 minutes.\n\n> STAT page from callroom\n"})
	var threadID string
	defer func() {
		if t.Failed() {
			t.Log(f.in.LogText())
		}
	}()
	waitFor(t, "the reply in the page's thread", func() bool {
		err := f.in.DB.Pool.QueryRow(t.Context(), `SELECT m.thread_id::text FROM messages m
			JOIN messages pm ON pm.id = m.reply_to WHERE pm.page_id = $1 AND m.author_id = $2`, pageID, f.doctor.User.ID).Scan(&threadID)
		return err == nil
	})
	msgs := f.doctor.Must(200, "GET", "/api/v1/threads/"+threadID+"/messages", nil)
	if !strings.Contains(string(mustJSON(t, msgs)), "On my way, 5 minutes.") || strings.Contains(string(mustJSON(t, msgs)), "> STAT page") {
		t.Fatalf("thread messages = %s, want the reply without the quoted notification", mustJSON(t, msgs))
	}
	if st := f.doctor.Must(200, "GET", "/api/v1/pages/"+pageID, nil)["status"]; st != "open" {
		t.Fatalf("a reply that is not a command changed the page to %v", st)
	}

	// Someone else replying ACK with the reply address is refused at RCPT,
	// and a forged From header behind a right envelope sender does nothing.
	wantCode(t, sendOne(t, f.in.MailAddr, mail{From: "intruder@example.net", To: []string{replyTo}, Subject: "Re: page", Body: "ACK\n"}), atRcpt, 550)
	mustSend(t, f.in.MailAddr, mail{From: f.doctorMail, HeaderFrom: "intruder@example.net", To: []string{replyTo}, Subject: "Re: page", Body: "ACK\n"})
	if st := f.doctor.Must(200, "GET", "/api/v1/pages/"+pageID, nil)["status"]; st != "open" {
		t.Fatalf("a reply from someone else changed the page to %v", st)
	}
	// ACK from the sign-in address works too.
	mustSend(t, f.in.MailAddr, mail{From: f.doctor.User.Email, To: []string{replyTo}, Subject: "Re: page", Body: "ack\n"})
	p := f.doctor.Must(200, "GET", "/api/v1/pages/"+pageID, nil)
	if p["status"] != "acknowledged" || p["acknowledged_by"] != f.doctor.User.ID.String() {
		t.Fatalf("after ACK: status %v by %v", p["status"], p["acknowledged_by"])
	}
	var denied int
	if err := f.in.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_events
		WHERE action = 'page.email_reply' AND object_id = $1 AND outcome = 'denied'`, pageID).Scan(&denied); err != nil || denied != 1 {
		t.Fatalf("denied replies audited: %d (%v), want 1", denied, err)
	}

	// A second ACK is answered by email: the page was already acknowledged.
	mustSend(t, f.in.MailAddr, mail{From: f.doctorMail, To: []string{replyTo}, Subject: "Re: page", Body: "ACK"})
	waitFor(t, "the already-acknowledged answer", func() bool {
		for _, m := range f.relay.Messages() {
			if strings.Contains(m.Data, "Subject: Page already acknowledged") && strings.Contains(m.Data, pageID) {
				return m.To[0] == f.doctorMail
			}
		}
		return false
	})
	for _, logs := range []string{f.in.LogText()} {
		if strings.Contains(logs, "Chest pain") || strings.Contains(logs, "On my way") {
			t.Errorf("page or reply text was logged")
		}
	}
}

// TestReplyCommands: RESOLVE and ESCALATE as the first word of a reply act
// on the page as the doctor, audited as theirs.
func TestReplyCommands(t *testing.T) {
	t.Parallel()
	f := newReplyFixture(t)
	nurse := f.in.User("Nurse N", "nurse")
	for _, tt := range []struct {
		body, action, status string
	}{
		// The policy has one step and no repeats: escalating exhausts it.
		{"ESCALATE\nplease get my fellow", "page.escalate", "unanswered"},
		{"Resolve - seen and treated", "page.resolve", "resolved"},
	} {
		pageID, replyTo := f.page(t, nurse)
		mustSend(t, f.in.MailAddr, mail{From: f.doctorMail, To: []string{replyTo}, Subject: "Re: page", Body: tt.body})
		if st := f.doctor.Must(200, "GET", "/api/v1/pages/"+pageID, nil)["status"]; st != tt.status {
			t.Errorf("%q: status %v, want %s", tt.body, st, tt.status)
		}
		var n int
		if err := f.in.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_events
			WHERE action = $1 AND object_id = $2 AND actor_id = $3 AND outcome = 'success'`,
			tt.action, pageID, f.doctor.User.ID).Scan(&n); err != nil || n != 1 {
			t.Errorf("%q: %d %s audit events by the doctor (%v), want 1", tt.body, n, tt.action, err)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
