package fhir

import (
	"context"

	"github.com/google/uuid"
)

// ProcessNow runs what one ProcessArgs job runs, for tests that hold locks
// around it.
func (s *Store) ProcessNow(ctx context.Context, id uuid.UUID) error { return s.process(ctx, id) }
