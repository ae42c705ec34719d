package benchutil

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Paced is what SendPaced sent.
type Paced struct {
	Due    []time.Time // when each request was due to be sent
	Accept Latencies   // due -> answered, for those answered without error
	Fails  int         // requests whose send returned an error
	Last   time.Time   // when the last answer came
}

// SendPaced sends n requests open-loop at rate per second: send(i) is
// called in a goroutine of its own at request i's due time, so a slow
// answer does not slow the offered load (a closed loop would hide a stall
// by sending less during it), with at most maxInFlight at once. If that
// bound is reached the sender falls behind, which shows in the latencies,
// since they are measured from each request's due time. It returns when
// every send has returned.
func SendPaced(n, rate, maxInFlight int, send func(i int) error) *Paced {
	p := &Paced{Due: make([]time.Time, n)}
	var fails atomic.Int64
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	t0 := time.Now().Add(10 * time.Millisecond)
	for i := range n {
		p.Due[i] = t0.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(p.Due[i]))
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := send(i); err != nil {
				fails.Add(1)
				return
			}
			p.Accept.Add(time.Since(p.Due[i]))
		}(i)
	}
	wg.Wait()
	p.Fails = int(fails.Load())
	p.Last = time.Now()
	return p
}

// PageSender returns, for a run's ids, a SendPaced send function under
// which page i is POSTed by nurses[i % len(nurses)] with the body of the
// same index and its id noted in ids[i].
func PageSender(ctx context.Context, nurses []*Client, bodies [][]byte) func(ids []uuid.UUID) func(i int) error {
	return func(ids []uuid.UUID) func(i int) error {
		return func(i int) error {
			var p struct{ ID uuid.UUID }
			err := nurses[i%len(nurses)].JSON(ctx, 201, "POST", "/api/v1/pages", bodies[i%len(bodies)], &p)
			ids[i] = p.ID
			return err
		}
	}
}
