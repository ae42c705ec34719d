package fhir

// Observer hears what the EHR connection does, after the transaction that
// did it commits; the metrics package implements it. Arguments are bounded
// labels, never ids or text: operation is "notification" (received),
// "processing" (applied to threads), "batch" (a batch applied one by one
// after applying it together failed) or "write_back" (sent to the EHR).
type Observer interface {
	FHIR(operation, outcome string)
}

type noObserver struct{}

func (noObserver) FHIR(string, string) {}

func (s *Store) observe() Observer {
	if s.Observe == nil {
		return noObserver{}
	}
	return s.Observe
}
