package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/inbox"
)

// threadRoutes: secure messaging. Who may do what is decided by package
// inbox, per thread (membership is the permission), and refusals are audited
// there; these handlers only decode, call it, and encode.
func (s *Server) threadRoutes(r chi.Router) {
	r.Post("/threads", s.createThread)
	r.Get("/threads", s.listThreads)
	r.Get("/threads/{id}", s.getThread)
	r.Post("/threads/{id}/members", s.addThreadMembers)
	r.Delete("/threads/{id}/members/{uid}", s.removeThreadMember)
	r.Post("/threads/{id}/messages", s.postMessage)
	r.Get("/threads/{id}/messages", s.listMessages)
	r.Get("/threads/{id}/messages/{mid}", s.getMessage)
	r.Patch("/threads/{id}/messages/{mid}", s.editMessage)
	r.Post("/threads/{id}/messages/{mid}/recall", s.recallMessage)
	r.Post("/threads/{id}/messages/{mid}/acknowledge", s.acknowledgeMessage)
	r.Get("/threads/{id}/messages/{mid}/versions", s.messageVersions)
	r.Post("/threads/{id}/read", s.markThreadRead)
	r.Post("/threads/{id}/attachments", s.uploadAttachment)
	r.Get("/threads/{id}/attachments", s.listAttachments)
	r.Get("/threads/{id}/attachments/{aid}", s.downloadAttachment)
	r.Post("/threads/{id}/legal-hold", s.setLegalHold)
	r.Put("/retention-policies/{kind}", s.putRetentionPolicy)
	r.Get("/patients/{ref}/threads", s.patientThreads)
	r.Get("/patients/{ref}/identifiers", s.patientIdentifiers)
	r.Post("/patients/{ref}/identifiers", s.linkPatientIdentifiers)
}

// createThread answers 201 with a new thread, or 200 with the direct thread
// the two people already have.
func (s *Server) createThread(w http.ResponseWriter, r *http.Request) {
	var in inbox.NewThread
	if !decode(w, r, &in) {
		return
	}
	t, created, err := s.Inbox.CreateThread(r.Context(), principal(r), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/threads/"+t.ID.String())
	}
	writeJSON(w, status, t)
}

func (s *Server) listThreads(w http.ResponseWriter, r *http.Request) {
	f := inbox.ThreadFilter{Kind: inbox.Kind(r.URL.Query().Get("kind"))}
	var ok bool
	if f.Limit, ok = inboxQueryInt(w, r, "limit"); !ok {
		return
	}
	out, err := s.Inbox.Threads(r.Context(), principal(r), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"threads": threadsOrEmpty(out)})
}

func (s *Server) getThread(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	out, err := s.Inbox.Thread(r.Context(), principal(r), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type addMembersRequest struct {
	UserIDs []uuid.UUID `json:"user_ids"`
}

func (s *Server) addThreadMembers(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in addMembersRequest
	if !ok || !decode(w, r, &in) {
		return
	}
	out, err := s.Inbox.AddMembers(r.Context(), principal(r), id, in.UserIDs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) removeThreadMember(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	uid, ok := pathID(w, r, "uid")
	if !ok {
		return
	}
	if err := s.Inbox.RemoveMember(r.Context(), principal(r), id, uid); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in inbox.NewMessage
	if !ok || !decode(w, r, &in) {
		return
	}
	out, err := s.Inbox.Post(r.Context(), principal(r), id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/threads/"+id.String()+"/messages/"+out.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

// listMessages pages newest first: pass the answer's next_before as ?before=
// for the next, older page.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	q := inbox.MessageQuery{Before: r.URL.Query().Get("before")}
	if q.Limit, ok = inboxQueryInt(w, r, "limit"); !ok {
		return
	}
	out, err := s.Inbox.Messages(r.Context(), principal(r), id, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// threadAndMessage parses {id} and {mid}.
func threadAndMessage(w http.ResponseWriter, r *http.Request) (thread, msg uuid.UUID, ok bool) {
	if thread, ok = pathID(w, r, "id"); !ok {
		return
	}
	msg, ok = pathID(w, r, "mid")
	return
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	tid, mid, ok := threadAndMessage(w, r)
	if !ok {
		return
	}
	out, err := s.Inbox.Message(r.Context(), principal(r), tid, mid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type editMessageRequest struct {
	Text string `json:"text"`
}

func (s *Server) editMessage(w http.ResponseWriter, r *http.Request) {
	tid, mid, ok := threadAndMessage(w, r)
	var in editMessageRequest
	if !ok || !decode(w, r, &in) {
		return
	}
	out, err := s.Inbox.Edit(r.Context(), principal(r), tid, mid, in.Text)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) recallMessage(w http.ResponseWriter, r *http.Request) {
	tid, mid, ok := threadAndMessage(w, r)
	if !ok {
		return
	}
	out, err := s.Inbox.Recall(r.Context(), principal(r), tid, mid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) acknowledgeMessage(w http.ResponseWriter, r *http.Request) {
	tid, mid, ok := threadAndMessage(w, r)
	if !ok {
		return
	}
	out, err := s.Inbox.Acknowledge(r.Context(), principal(r), tid, mid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) messageVersions(w http.ResponseWriter, r *http.Request) {
	tid, mid, ok := threadAndMessage(w, r)
	if !ok {
		return
	}
	out, err := s.Inbox.Versions(r.Context(), principal(r), tid, mid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type markReadRequest struct {
	MessageID *uuid.UUID `json:"message_id"`
}

func (s *Server) markThreadRead(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in markReadRequest
	if !ok || !decode(w, r, &in) {
		return
	}
	if in.MessageID == nil {
		invalid(w, "message_id", "is required: the newest message read")
		return
	}
	out, err := s.Inbox.MarkRead(r.Context(), principal(r), id, *in.MessageID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// uploadAttachment takes the file as the raw body (not JSON, so not bound by
// MaxBodyBytes but by inbox.MaxAttachmentBytes). The declared Content-Type
// is ignored: the inbox judges the type from the bytes.
func (s *Server) uploadAttachment(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	content, err := io.ReadAll(http.MaxBytesReader(w, r.Body, inbox.MaxAttachmentBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		attachmentTooLarge(w)
		return
	}
	if err != nil {
		badRequest(w, "", "the upload was cut short")
		return
	}
	out, err := s.Inbox.Upload(r.Context(), principal(r), id, r.URL.Query().Get("filename"), content)
	if errors.Is(err, inbox.ErrTooLarge) {
		attachmentTooLarge(w)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/threads/"+id.String()+"/attachments/"+out.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func attachmentTooLarge(w http.ResponseWriter) {
	writeProblem(w, Problem{Type: problemBase + "too-large", Status: http.StatusRequestEntityTooLarge,
		Detail: "an attachment may be at most 20 MiB (" + strconv.Itoa(inbox.MaxAttachmentBytes) + " bytes)"})
}

func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	out, err := s.Inbox.Attachments(r.Context(), principal(r), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"attachments": out})
}

// downloadAttachment sends the file as an attachment (never rendered
// inline) with the type the inbox detected at upload.
func (s *Server) downloadAttachment(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	aid, ok := pathID(w, r, "aid")
	if !ok {
		return
	}
	a, content, err := s.Inbox.Download(r.Context(), principal(r), id, aid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	disposition := "attachment"
	if a.Filename != "" {
		if d := mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}); d != "" {
			disposition = d
		}
	}
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(content)))
	h.Set("Content-Disposition", disposition)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(content) //nolint:errcheck // the client is gone
}

type legalHoldRequest struct {
	LegalHold *bool `json:"legal_hold"`
}

func (s *Server) setLegalHold(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in legalHoldRequest
	if !ok || !decode(w, r, &in) {
		return
	}
	if in.LegalHold == nil {
		invalid(w, "legal_hold", "is required: true or false")
		return
	}
	out, err := s.Inbox.SetLegalHold(r.Context(), principal(r), id, *in.LegalHold)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type retentionRequest struct {
	Days *int `json:"days"`
}

func (s *Server) putRetentionPolicy(w http.ResponseWriter, r *http.Request) {
	var in retentionRequest
	if !decode(w, r, &in) {
		return
	}
	if in.Days == nil {
		invalid(w, "days", "is required")
		return
	}
	out, err := s.Inbox.SetRetention(r.Context(), principal(r), inbox.Kind(chi.URLParam(r, "kind")), *in.Days)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// patientThreads is the chart view. {ref} is "Patient/123" or an identifier
// "system|value", URL-escaped ("Patient%2F123"). When the request path had
// escapes, chi matched the raw path, so the parameter is still escaped.
func (s *Server) patientThreads(w http.ResponseWriter, r *http.Request) {
	ref, ok := patientParam(w, r)
	if !ok {
		return
	}
	out, err := s.Inbox.PatientThreads(r.Context(), principal(r), ref)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"threads": threadsOrEmpty(out)})
}

// inboxQueryInt parses an optional integer query parameter (0 when absent).
func inboxQueryInt(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		badRequest(w, name, "is not an integer")
		return 0, false
	}
	return n, true
}

func threadsOrEmpty(s []inbox.Thread) []inbox.Thread {
	if s == nil {
		return []inbox.Thread{}
	}
	return s
}
