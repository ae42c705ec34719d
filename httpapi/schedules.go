package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/oncall"
)

func (s *Server) scheduleRoutes(r chi.Router) {
	r.Post("/schedules", s.createSchedule)
	r.Get("/schedules", s.listSchedules)
	r.Get("/schedules/{id}", s.getSchedule)
	r.Patch("/schedules/{id}", s.updateSchedule)
	r.Delete("/schedules/{id}", s.deleteSchedule)
	r.Post("/schedules/{id}/rotations", s.addRotation)
	r.Delete("/schedules/{id}/rotations/{rid}", s.deleteRotation)
	r.Post("/schedules/{id}/rules", s.addRule)
	r.Delete("/schedules/{id}/rules/{rid}", s.deleteRule)
	r.Post("/schedules/{id}/overrides", s.addOverride)
	r.Get("/schedules/{id}/overrides", s.listOverrides)
	r.Delete("/schedules/{id}/overrides/{oid}", s.deleteOverride)
	r.Get("/schedules/{id}/on-call", s.onCall)
	r.Get("/schedules/{id}/shifts", s.shifts)
	r.Get("/schedules/{id}/gaps", s.gaps)
	r.Post("/schedules/{id}/feeds", s.createScheduleFeed)
	r.Get("/schedules/{id}/feeds", s.listScheduleFeeds)
	r.Post("/users/{id}/feeds", s.createUserFeed)
	r.Delete("/feeds/{id}", s.revokeFeed)
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	var in oncall.NewSchedule
	if !decode(w, r, &in) || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	out, err := s.OnCall.CreateSchedule(r.Context(), principal(r).Actor(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/schedules/"+out.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	out, err := s.OnCall.Schedules(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	out, err := s.OnCall.Schedule(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in oncall.ScheduleChange
	if !ok || !decode(w, r, &in) || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	out, err := s.OnCall.UpdateSchedule(r.Context(), principal(r).Actor(), id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	if err := s.OnCall.DeleteSchedule(r.Context(), principal(r).Actor(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) addRotation(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in oncall.Rotation
	if !ok || !decode(w, r, &in) || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	out, err := s.OnCall.AddRotation(r.Context(), principal(r).Actor(), id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) deleteRotation(w http.ResponseWriter, r *http.Request) {
	s.deleteSchedulePart(w, r, "rid", s.OnCall.DeleteRotation)
}

func (s *Server) addRule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in oncall.Rule
	if !ok || !decode(w, r, &in) || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	out, err := s.OnCall.AddRule(r.Context(), principal(r).Actor(), id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) {
	s.deleteSchedulePart(w, r, "rid", s.OnCall.DeleteRule)
}

func (s *Server) addOverride(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in oncall.Override
	if !ok || !decode(w, r, &in) || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	out, err := s.OnCall.AddOverride(r.Context(), principal(r).Actor(), id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listOverrides(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	from, to, ok := queryRange(w, r)
	if !ok {
		return
	}
	out, err := s.OnCall.Overrides(r.Context(), id, from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"overrides": out})
}

func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request) {
	s.deleteSchedulePart(w, r, "oid", s.OnCall.DeleteOverride)
}

func (s *Server) deleteSchedulePart(w http.ResponseWriter, r *http.Request, param string,
	del func(context.Context, audit.Actor, uuid.UUID, uuid.UUID) error) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	part, ok := pathID(w, r, param)
	if !ok || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	if err := del(r.Context(), principal(r).Actor(), id, part); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// onCall answers "who is on call for this schedule now (or at ?at=)".
func (s *Server) onCall(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	at := time.Now()
	if v := r.URL.Query().Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			badRequest(w, "at", "must be an RFC 3339 time such as 2026-03-08T09:00:00-06:00")
			return
		}
		at = t
	}
	ids, err := s.OnCall.OnCallAt(r.Context(), id, at)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	names, err := s.OnCall.UserNames(r.Context(), ids)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type person struct {
		ID   uuid.UUID `json:"id"`
		Name string    `json:"name"`
	}
	users := make([]person, 0, len(ids))
	for _, u := range ids {
		users = append(users, person{u, names[u]})
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedule_id": id, "at": at.UTC(), "users": users})
}

func (s *Server) shifts(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	from, to, ok := queryRange(w, r)
	if !ok {
		return
	}
	out, err := s.OnCall.Shifts(r.Context(), id, from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []oncall.Shift{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedule_id": id, "from": from, "to": to, "shifts": out})
}

func (s *Server) gaps(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	from, to, ok := queryRange(w, r)
	if !ok {
		return
	}
	out, err := s.OnCall.Gaps(r.Context(), id, from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []oncall.Gap{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedule_id": id, "from": from, "to": to, "gaps": out})
}

// queryRange reads ?from=&to= as RFC 3339 times; the domain checks their order and span.
func queryRange(w http.ResponseWriter, r *http.Request) (from, to time.Time, ok bool) {
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(p.name)
		if v == "" {
			invalid(w, p.name, "is required (RFC 3339)")
			return from, to, false
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			badRequest(w, p.name, "must be an RFC 3339 time such as 2026-03-08T00:00:00Z")
			return from, to, false
		}
		*p.dst = t
	}
	return from, to, true
}

type feedCreated struct {
	oncall.Feed
	URL string `json:"url"`
}

func (s *Server) feedURL(secret string) string {
	return strings.TrimRight(s.PublicURL, "/") + "/calendar/" + secret + ".ics"
}

func (s *Server) createScheduleFeed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadSchedules) {
		return
	}
	f, secret, err := s.OnCall.CreateFeed(r.Context(), principal(r).Actor(), &id, nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, feedCreated{f, s.feedURL(secret)})
}

func (s *Server) listScheduleFeeds(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.EditSchedules) {
		return
	}
	out, err := s.OnCall.Feeds(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"feeds": out})
}

// createUserFeed makes a feed of one person's shifts: for themselves, or by an admin.
func (s *Server) createUserFeed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if principal(r).User.ID != id && !s.allow(w, r, auth.ManageUsers) {
		return
	}
	if _, err := s.Auth.User(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	f, secret, err := s.OnCall.CreateFeed(r.Context(), principal(r).Actor(), nil, &id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, feedCreated{f, s.feedURL(secret)})
}

// revokeFeed: the feed's creator, its user, schedulers and admins may revoke it.
func (s *Server) revokeFeed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	f, err := s.OnCall.Feed(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := principal(r)
	mine := (f.CreatedBy != nil && *f.CreatedBy == p.User.ID) || (f.UserID != nil && *f.UserID == p.User.ID)
	if !mine && !s.allow(w, r, auth.EditSchedules) {
		return
	}
	if err := s.OnCall.RevokeFeed(r.Context(), p.Actor(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// calendar serves a feed at its secret URL, without sign-in.
func (s *Server) calendar(w http.ResponseWriter, r *http.Request) {
	secret, ok := strings.CutSuffix(chi.URLParam(r, "file"), ".ics")
	if !ok {
		notFound(w, "no such calendar")
		return
	}
	var buf bytes.Buffer
	if err := s.OnCall.WriteFeed(r.Context(), secret, time.Now(), &buf); err != nil {
		if errors.Is(err, callroom.ErrNotFound) {
			notFound(w, "no such calendar, or it was revoked")
			return
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/calendar; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Write(buf.Bytes()) //nolint:errcheck
}
