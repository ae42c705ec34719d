package escalation

import "time"

// Observer hears about paging as it happens, after the transaction that did
// it commits; the metrics package implements it. Arguments are bounded
// labels only (service names, priorities, channels), never ids or text.
type Observer interface {
	PageCreated(service, priority string)
	PageAcknowledged(priority string, after time.Duration)
	StepFired(late time.Duration)
	NotificationSettled(channel, status string)
}

type noObserver struct{}

func (noObserver) PageCreated(string, string)             {}
func (noObserver) PageAcknowledged(string, time.Duration) {}
func (noObserver) StepFired(time.Duration)                {}
func (noObserver) NotificationSettled(string, string)     {}

func (s *Store) observe() Observer {
	if s.Observe == nil {
		return noObserver{}
	}
	return s.Observe
}
