package escalation

// FailFirstStep makes every first step that Create fires inline fail with
// err (nil restores), to test the fallback to the escalation queue.
func FailFirstStep(s *Store, err error) { s.firstStepFault = err }

// GroupPagesFrom makes Create send pages in groups from n pages being sent
// at once (1: whenever it can; 0: never).
func GroupPagesFrom(s *Store, n int) { s.pages.SetFrom(n) }

// PagesSentInGroups is how many pages Create committed in a group.
func PagesSentInGroups(s *Store) int64 { return s.pages.Committed() }
