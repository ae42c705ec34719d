package benchutil

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Latencies collects durations from any goroutine.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Values returns a copy of what was recorded.
func (l *Latencies) Values() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.d)
}

// Len is how many were recorded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Quantile returns the q-quantile (nearest rank: the smallest recorded value
// at or above which a fraction q of the values lie), 0 when empty.
func (l *Latencies) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	i := int(math.Ceil(q*float64(len(l.d)))) - 1
	return l.d[min(max(i, 0), len(l.d)-1)]
}

// Max returns the largest value.
func (l *Latencies) Max() time.Duration { return l.Quantile(1) }

// Report reports p50, p99 and max in milliseconds as metrics named
// prefix+"p50-ms" etc.
func (l *Latencies) Report(b *testing.B, prefix string) {
	b.ReportMetric(Ms(l.Quantile(0.50)), prefix+"p50-ms")
	b.ReportMetric(Ms(l.Quantile(0.99)), prefix+"p99-ms")
	b.ReportMetric(Ms(l.Max()), prefix+"max-ms")
}

// String summarises the distribution for a log line.
func (l *Latencies) String() string {
	return fmt.Sprintf("n=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms", l.Len(),
		Ms(l.Quantile(0.5)), Ms(l.Quantile(0.9)), Ms(l.Quantile(0.99)), Ms(l.Max()))
}

// Ms is d in (fractional) milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// SQLStats is a pgx tracer that adds up wall time per statement (keyed by
// its first line, which for River's queries is the sqlc name). Wall time
// includes the round trip and, for COMMIT, waiting for the WAL flush.
type SQLStats struct {
	mu sync.Mutex
	m  map[string]*sqlStat
}

type sqlStat struct {
	n     int
	total time.Duration
}

type traceKey struct{}

type traceStart struct {
	sql string
	at  time.Time
}

func newSQLStats() *SQLStats { return &SQLStats{m: map[string]*sqlStat{}} }

func statementKey(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexByte(sql, '\n'); i >= 0 {
		sql = sql[:i]
	}
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 70 {
		sql = sql[:70]
	}
	return sql
}

// TraceQueryStart implements pgx.QueryTracer.
func (s *SQLStats) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{d.SQL, time.Now()})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (s *SQLStats) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if st, ok := ctx.Value(traceKey{}).(traceStart); ok {
		s.add(statementKey(st.sql), time.Since(st.at))
	}
}

// TraceBatchStart implements pgx.BatchTracer.
func (s *SQLStats) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	key := "batch"
	if d.Batch != nil && len(d.Batch.QueuedQueries) > 0 {
		key = "batch: " + statementKey(d.Batch.QueuedQueries[0].SQL)
	}
	return context.WithValue(ctx, traceKey{}, traceStart{key, time.Now()})
}

// TraceBatchQuery implements pgx.BatchTracer.
func (s *SQLStats) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (s *SQLStats) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	if st, ok := ctx.Value(traceKey{}).(traceStart); ok {
		s.add(st.sql, time.Since(st.at))
	}
}

func (s *SQLStats) add(key string, d time.Duration) {
	s.mu.Lock()
	st := s.m[key]
	if st == nil {
		st = &sqlStat{}
		s.m[key] = st
	}
	st.n++
	st.total += d
	s.mu.Unlock()
}

// Reset forgets everything recorded so far (the setup's statements).
func (s *SQLStats) Reset() {
	s.mu.Lock()
	s.m = map[string]*sqlStat{}
	s.mu.Unlock()
}

// Calls is the number of statements recorded (a batch counts once).
func (s *SQLStats) Calls() int { return s.CallsWhere(func(string) bool { return true }) }

// CallsWhere is Calls of the statements for which keep returns true, given
// the statement's first 70 characters ("batch: " and its first statement's
// for a batch).
func (s *SQLStats) CallsWhere(keep func(statement string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.m {
		if keep(k) {
			n += v.n
		}
	}
	return n
}

// Top returns the n statements with the most total wall time, one per line:
// share of all statement time, calls, mean, total.
func (s *SQLStats) Top(n int) string {
	s.mu.Lock()
	type row struct {
		key string
		sqlStat
	}
	var rows []row
	var all time.Duration
	for k, v := range s.m {
		rows = append(rows, row{k, *v})
		all += v.total
	}
	s.mu.Unlock()
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.total, a.total) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "SQL wall time by statement (all statements: %s):\n", all.Round(time.Millisecond))
	for i, r := range rows {
		if i == n {
			break
		}
		fmt.Fprintf(&sb, "  %5.1f%% %7d calls %8.3fms mean  %-70s\n", 100*float64(r.total)/float64(all), r.n,
			Ms(r.total/time.Duration(r.n)), r.key)
	}
	return sb.String()
}

// CPU is processor time used so far by this process (client and server)
// and by the PostgreSQL cluster the instance uses.
type CPU struct {
	Go, Postgres time.Duration
	// Machine is the busy time of all processors (from /proc/stat), so
	// Machine - Go - Postgres is what other processes on this shared
	// machine took meanwhile.
	Machine time.Duration
	At      time.Time
}

// Sub is the CPU used between o and c.
func (c CPU) Sub(o CPU) CPU {
	return CPU{Go: c.Go - o.Go, Postgres: c.Postgres - o.Postgres, Machine: c.Machine - o.Machine, At: c.At}
}

// Others is the processor time that processes other than this one and the
// PostgreSQL cluster used, never negative.
func (c CPU) Others() time.Duration { return max(c.Machine-c.Go-c.Postgres, 0) }

// String says who used the processors over d.
func (c CPU) String(d time.Duration) string {
	cores := func(x time.Duration) float64 { return x.Seconds() / d.Seconds() }
	return fmt.Sprintf("CPU over %s: Go process %.2f cores, PostgreSQL %.2f cores, other processes %.2f cores (of %d)",
		d.Round(time.Millisecond), cores(c.Go), cores(c.Postgres), cores(c.Others()), runtime.NumCPU())
}

// machineBusy is the busy time of all processors since boot.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// CPU samples CPU time. PostgreSQL's share is the postmaster and all of its
// children (backends, WAL writer, checkpointer), found from a backend's
// parent: it is only meaningful for a cluster on this machine, which is the
// only kind the benchmarks use. Zero when /proc is unavailable.
func (in *Instance) CPU() CPU {
	c := CPU{At: time.Now(), Go: procCPU("self"), Machine: machineBusy()}
	var pid int
	if err := in.DB.Pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		return c
	}
	postmaster := procPPID(strconv.Itoa(pid))
	if postmaster <= 1 {
		return c
	}
	c.Postgres = procCPU(strconv.Itoa(postmaster))
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p := filepath.Base(d)
		if procPPID(p) == postmaster {
			c.Postgres += procCPU(p)
		}
	}
	return c
}

// procStat returns the fields of /proc/<pid>/stat after the command name.
func procStat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func procPPID(pid string) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// procCPU is utime+stime; clock ticks are 100 Hz on Linux.
func procCPU(pid string) time.Duration {
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// PoolWait is how much the server's pool made callers wait.
type PoolWait struct {
	Acquires, Waited int64
	WaitTime         time.Duration
}

// PoolWait samples the server pool's counters.
func (in *Instance) PoolWait() PoolWait {
	st := in.Pool.Stat()
	return poolWait(st)
}

func poolWait(st *pgxpool.Stat) PoolWait {
	return PoolWait{Acquires: st.AcquireCount(), Waited: st.EmptyAcquireCount(), WaitTime: st.EmptyAcquireWaitTime()}
}

// Sub is the waiting between o and w.
func (w PoolWait) Sub(o PoolWait) PoolWait {
	return PoolWait{Acquires: w.Acquires - o.Acquires, Waited: w.Waited - o.Waited, WaitTime: w.WaitTime - o.WaitTime}
}
