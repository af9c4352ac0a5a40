// Package web holds the pages Banyan serves (viewer, browser publisher,
// dashboard) and their assets, embedded into the binary.
package web

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"regexp"
)

//go:embed static
var static embed.FS

var pages = template.Must(template.ParseFS(static, "static/*.html"))

var streamRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Handler serves the pages and /static/ assets.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	mux.HandleFunc("GET /{$}", page("index.html", false))
	mux.HandleFunc("GET /watch/{stream}", page("watch.html", true))
	mux.HandleFunc("GET /publish/{stream}", page("publish.html", true))
	mux.HandleFunc("GET /dashboard", page("dashboard.html", false))
	return mux
}

func page(name string, needStream bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stream := r.PathValue("stream")
		if needStream && !streamRE.MatchString(stream) {
			http.Error(w, "invalid stream name", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'")
		_ = pages.ExecuteTemplate(w, name, map[string]string{"Stream": stream})
	}
}
