package fhir

import (
	"testing"
)

// FuzzNotification feeds arbitrary bodies to the checks every notification
// goes through before anything is recorded: they must refuse or accept,
// never panic. The seeds run in every `go test`.
func FuzzNotification(f *testing.F) {
	for _, seed := range []string{
		`{"resourceType":"Encounter","id":"1","status":"in-progress","class":{"code":"IMP"},"subject":{"reference":"Patient/1"}}`,
		`{"resourceType":"CareTeam","id":"1","participant":[{"member":{"reference":"Practitioner/1"},"period":{"start":"2024"}}]}`,
		`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"type","valueCode":"event-notification"},{"name":"notification-event","part":[{"name":"event-number","valueString":"7"}]}]}},{"fullUrl":"http://x/Encounter/1"}]}`,
		`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"events-since-subscription-start","valueString":"-1"}]}}]}`,
		`{"resourceType":"Encounter","status":7}`, `[]`, `null`, `{"resourceType":""}`, ``,
	} {
		f.Add([]byte(seed))
	}
	subs := []Subscription{
		{Name: "e", Flavor: Medplum, Criteria: "Encounter", Secret: "0123456789abcdef"},
		{Name: "c", Flavor: RestHookPayload, Criteria: "CareTeam", Secret: "0123456789abcdef"},
		{Name: "b", Flavor: Backport, Criteria: "Encounter", Topic: "t", Secret: "0123456789abcdef"},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, sub := range subs {
			n := notification{subscription: sub, body: body}
			in := Incoming{Method: "POST", Body: body, Header: func(string) string { return "" }}
			if sub.Flavor == RestHookPayload {
				in.Method, in.Path = "PUT", "CareTeam/1"
			}
			var err error
			if sub.Flavor == Backport {
				err = n.checkBundle()
			} else {
				err = n.checkResource(in)
			}
			if err != nil {
				if _, ok := err.(*Rejection); !ok {
					t.Fatalf("%s: an error that is not a Rejection: %v", sub.Flavor, err)
				}
			}
		}
		literalRef(string(body))
		parseDateTime(string(body))
	})
}
