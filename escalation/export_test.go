package escalation

// FailFirstStep makes every first step that Create fires inline fail with
// err (nil restores), to test the fallback to the escalation queue.
func FailFirstStep(s *Store, err error) { s.firstStepFault = err }
