package httpapi

import (
	"encoding/csv"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/reports"
)

func (s *Server) reportRoutes(r chi.Router) {
	r.Get("/reports/response-times", s.responseTimes)
}

// responseTimes serves the quality committee's report as JSON, as CSV
// (format=csv or Accept: text/csv; part=services, people or gaps) or as an
// SVG chart of time to acknowledge (format=svg) for the admin page. It names
// staff and their response times, so it takes audit.read (auditors and
// administrators). from defaults to 30 days before to; to defaults to now.
func (s *Server) responseTimes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := reports.Filter{To: time.Now()}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				badRequest(w, p.name, "must be an RFC 3339 time")
				return
			}
			*p.dst = t
		}
	}
	if q.Get("from") == "" {
		f.From = f.To.AddDate(0, 0, -30)
	}
	if v := q.Get("service"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			badRequest(w, "service", "is not a UUID")
			return
		}
		f.ServiceID = &id
	}
	format := q.Get("format")
	if format == "" && strings.Contains(r.Header.Get("Accept"), "text/csv") {
		format = "csv"
	}
	part := q.Get("part")
	switch {
	case format != "" && format != "json" && format != "csv" && format != "svg":
		invalid(w, "format", "must be json, csv or svg")
		return
	case part != "" && part != "services" && part != "people" && part != "gaps":
		invalid(w, "part", "must be services, people or gaps")
		return
	}
	if !s.allow(w, r, auth.ReadAudit) {
		return
	}
	out, err := reports.Report(r.Context(), s.DB, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="response-times.csv"`)
		writeReportCSV(w, out, part)
	case "svg":
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Write([]byte(responseTimesSVG(out))) //nolint:errcheck // the client is gone
	default:
		if out.Services == nil {
			out.Services = []reports.ServiceSummary{}
		}
		if out.People == nil {
			out.People = []reports.PersonSummary{}
		}
		if out.Gaps == nil {
			out.Gaps = []reports.CoverageGap{}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func seconds(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

func idOrEmpty(id *uuid.UUID) string {
	if id == nil {
		return ""
	}
	return id.String()
}

func writeReportCSV(w http.ResponseWriter, out reports.ResponseTimes, part string) {
	c := csv.NewWriter(w)
	switch part {
	case "people":
		c.Write([]string{"user_id", "name", "received", "acknowledged", "median_response_seconds"}) //nolint:errcheck
		for _, p := range out.People {
			c.Write([]string{p.UserID.String(), p.Name, strconv.FormatInt(p.Received, 10), //nolint:errcheck
				strconv.FormatInt(p.Acknowledged, 10), seconds(p.MedianResponseSeconds)})
		}
	case "gaps":
		c.Write([]string{"service_id", "service", "step", "pages", "details"}) //nolint:errcheck
		for _, g := range out.Gaps {
			c.Write([]string{idOrEmpty(g.ServiceID), g.ServiceName, strconv.Itoa(g.Step), //nolint:errcheck
				strconv.FormatInt(g.Pages, 10), strings.Join(g.Details, "; ")})
		}
	default:
		c.Write([]string{"service_id", "service", "priority", "sent", "acknowledged", "escalated", "unanswered", //nolint:errcheck
			"ack_median_seconds", "ack_p90_seconds"})
		for _, s := range out.Services {
			c.Write([]string{idOrEmpty(s.ServiceID), s.ServiceName, s.Priority, strconv.FormatInt(s.Sent, 10), //nolint:errcheck
				strconv.FormatInt(s.Acknowledged, 10), strconv.FormatInt(s.Escalated, 10), strconv.FormatInt(s.Unanswered, 10),
				seconds(s.AckMedianSeconds), seconds(s.AckP90Seconds)})
		}
	}
	c.Flush()
}

// responseTimesSVG draws, per service and priority, the median (dark) and
// 90th percentile (light) time to acknowledge as horizontal bars.
func responseTimesSVG(out reports.ResponseTimes) string {
	const rowH, labelW, barW = 36, 260, 420
	maxV := 1.0
	for _, s := range out.Services {
		if s.AckP90Seconds != nil && *s.AckP90Seconds > maxV {
			maxV = *s.AckP90Seconds
		}
	}
	h := 40 + rowH*max(len(out.Services), 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12" role="img">`, labelW+barW+150, h)
	fmt.Fprintf(&b, `<title>Time to acknowledge, %s to %s</title>`, out.From.Format(time.DateOnly), out.To.Format(time.DateOnly))
	fmt.Fprintf(&b, `<text x="4" y="16" font-weight="bold">Time to acknowledge (median dark, 90th percentile light), %s to %s</text>`,
		out.From.Format(time.DateOnly), out.To.Format(time.DateOnly))
	if len(out.Services) == 0 {
		b.WriteString(`<text x="4" y="50">No pages in this period.</text>`)
	}
	for i, s := range out.Services {
		y := 30 + i*rowH
		fmt.Fprintf(&b, `<text x="4" y="%d">%s · %s (%d sent)</text>`, y+16, html.EscapeString(s.ServiceName), html.EscapeString(s.Priority), s.Sent)
		if s.AckP90Seconds != nil {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="12" fill="#9ecae1"/>`, labelW, y+6, *s.AckP90Seconds/maxV*barW)
		}
		if s.AckMedianSeconds != nil {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="12" fill="#3182bd"/>`, labelW, y+6, *s.AckMedianSeconds/maxV*barW)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%ss / %ss</text>`, labelW+barW+6, y+16, seconds(s.AckMedianSeconds), seconds(s.AckP90Seconds))
		} else {
			fmt.Fprintf(&b, `<text x="%d" y="%d">none acknowledged</text>`, labelW+barW+6, y+16)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
