package smsc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Handler is a small HTTP front for a running simulator:
//
//	POST /mo  {"from":"13800138000","to":"10086","text":"TQ"}
//	          delivers an MO; 200 {"status":"delivered"} once the ESME
//	          acked it, 502 when it did not, 400 on bad input.
//	GET  /mt  recent MT messages as JSON Lines, oldest first.
//	GET  /stats the counters as JSON.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mo", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ From, To, Text string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		err := s.InjectMO(ctx, in.From, in.To, in.Text)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case errors.Is(err, ErrInvalid):
			w.WriteHeader(http.StatusBadRequest)
		case err != nil:
			w.WriteHeader(http.StatusBadGateway)
		}
		status := "delivered"
		if err != nil {
			status = err.Error()
		}
		json.NewEncoder(w).Encode(map[string]string{"status": status})
	})
	mux.HandleFunc("GET /mt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jsonl")
		enc := json.NewEncoder(w)
		for _, mt := range s.MTs() {
			enc.Encode(mt)
		}
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Stats())
	})
	return mux
}
