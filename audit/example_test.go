package audit_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
)

// ExampleAuditEvent shows one audit row as the FHIR R4 AuditEvent that
// GET /api/v1/audit exports: a nurse opening a patient's thread.
func ExampleAuditEvent() {
	nurse := uuid.MustParse("0b7c6a52-2a4b-4d8e-9a39-4f3f2c1d0e5a")
	patient := "Patient/123"
	e := audit.Event{
		ID: 42, At: time.Date(2026, 11, 22, 15, 4, 5, 0, time.UTC), ActorID: &nurse, ClientAddr: "10.1.2.3",
		Action: "thread.read", ObjectType: "thread", ObjectID: "5e0c1f2a-9d1b-4c55-8f0e-2b6a7c8d9e01",
		Outcome: audit.Success, PatientRef: &patient,
	}
	b, _ := json.MarshalIndent(audit.AuditEvent(e), "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "action": "R",
	//   "agent": [
	//     {
	//       "network": {
	//         "address": "10.1.2.3",
	//         "type": "2"
	//       },
	//       "requestor": true,
	//       "type": {
	//         "coding": [
	//           {
	//             "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
	//             "code": "IRCP",
	//             "display": "information recipient"
	//           }
	//         ]
	//       },
	//       "who": {
	//         "identifier": {
	//           "system": "urn:callroom:user",
	//           "value": "0b7c6a52-2a4b-4d8e-9a39-4f3f2c1d0e5a"
	//         }
	//       }
	//     }
	//   ],
	//   "entity": [
	//     {
	//       "role": {
	//         "system": "http://terminology.hl7.org/CodeSystem/object-role",
	//         "code": "1",
	//         "display": "Patient"
	//       },
	//       "type": {
	//         "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
	//         "code": "1",
	//         "display": "Person"
	//       },
	//       "what": {
	//         "reference": "Patient/123"
	//       }
	//     },
	//     {
	//       "type": {
	//         "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
	//         "code": "2",
	//         "display": "System Object"
	//       },
	//       "what": {
	//         "display": "thread",
	//         "identifier": {
	//           "system": "urn:callroom:thread",
	//           "value": "5e0c1f2a-9d1b-4c55-8f0e-2b6a7c8d9e01"
	//         }
	//       }
	//     }
	//   ],
	//   "id": "42",
	//   "meta": {
	//     "profile": [
	//       "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
	//     ]
	//   },
	//   "outcome": "0",
	//   "recorded": "2026-11-22T15:04:05Z",
	//   "resourceType": "AuditEvent",
	//   "source": {
	//     "observer": {
	//       "display": "callroom"
	//     },
	//     "type": [
	//       {
	//         "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
	//         "code": "4",
	//         "display": "Application Server"
	//       }
	//     ]
	//   },
	//   "subtype": [
	//     {
	//       "system": "urn:callroom:audit-action",
	//       "code": "thread.read"
	//     },
	//     {
	//       "system": "http://hl7.org/fhir/restful-interaction",
	//       "code": "read"
	//     }
	//   ],
	//   "type": {
	//     "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
	//     "code": "rest",
	//     "display": "RESTful Operation"
	//   }
	// }
}
