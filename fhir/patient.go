package fhir

import (
	"context"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/patient"
)

func decodePatient(raw []byte) (models.Patient, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.Patient{}, err
	} else if t != "Patient" {
		return models.Patient{}, reject(422, "invalid", "expected a Patient, got a %s", t)
	}
	return models.UnmarshalPatient(raw)
}

// patientIdentifiers returns the identifiers (MRN and the like) of the
// EHR's Patient ref in token form, read from the EHR. Callroom keeps no
// demographics: only these tokens, so that threads opened under the MRN
// before the FHIR id was known join the patient's chart (package patient).
func (s *Store) patientIdentifiers(ctx context.Context, ref string) ([]string, error) {
	raw, err := s.client.ReadReference(ctx, ref)
	if err != nil {
		return nil, err
	}
	p, err := decodePatient(raw)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, id := range p.Identifier {
		if id.System == nil || id.Value == nil {
			continue
		}
		if tok := patient.Identifier(*id.System, *id.Value); tok != "" {
			ids = append(ids, tok)
		}
	}
	return ids, nil
}
