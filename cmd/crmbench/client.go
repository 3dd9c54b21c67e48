package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const apiBase = "/api/v1/crm"

// client is the HTTP client of the service: keep-alive connections, one
// per worker, to the loopback address given, no proxy, no redirects.
type client struct {
	base  string // http://host:port
	token string
	hc    *http.Client
}

func newClient(base, token string, conns int) *client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{
		base:  strings.TrimRight(base, "/"),
		token: token,
		hc: &http.Client{
			Transport:     tr,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// statusError is a response with an unexpected status.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s", e.method, e.path, e.status, e.body)
}

// do sends one request and reads the whole response; a status other than
// want is a *statusError. body may be nil or a value sent as JSON.
func (c *client) do(ctx context.Context, method, path string, body any, want int) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the label already
		}
		return nil, nil, fmt.Errorf("%s %s: %w", method, label(path), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", method, label(path), err)
	}
	if resp.StatusCode != want {
		msg := string(b)
		if len(msg) > 120 {
			msg = msg[:120]
		}
		return b, resp.Header, &statusError{method, label(path), resp.StatusCode, msg}
	}
	return b, resp.Header, nil
}

// label shortens a path for error messages (no ids, no query).
func label(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if len(p) == 36 && strings.Count(p, "-") == 4 {
			parts[i] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

type customerOut struct {
	CustomerID   string `json:"customerId"`
	CustomerCode string `json:"customerCode"`
}

// create posts a customer and returns its id (from Location, else the body).
func (c *client) create(ctx context.Context, p person) (string, error) {
	b, h, err := c.do(ctx, http.MethodPost, apiBase+"/customers", p.createBody(), http.StatusCreated)
	if err != nil {
		return "", err
	}
	if loc := h.Get("Location"); loc != "" {
		if i := strings.LastIndexByte(loc, '/'); i >= 0 && len(loc)-i-1 == 36 {
			return loc[i+1:], nil
		}
	}
	var out struct {
		Data customerOut `json:"data"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Data.CustomerID == "" {
		return "", fmt.Errorf("POST /customers: no customer id in the response")
	}
	return out.Data.CustomerID, nil
}

type listOut struct {
	Data []customerOut `json:"data"`
	Meta struct {
		Total      int64 `json:"total"`
		TotalPages int64 `json:"totalPages"`
	} `json:"meta"`
}

// list fetches one page of GET /customers with the raw query string qs.
func (c *client) list(ctx context.Context, qs string) (listOut, error) {
	var out listOut
	b, _, err := c.do(ctx, http.MethodGet, apiBase+"/customers?"+qs, nil, http.StatusOK)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}

// total returns the number of live customers.
func (c *client) total(ctx context.Context) (int64, error) {
	out, err := c.list(ctx, "page=1&perPage=1")
	return out.Meta.Total, err
}

// sample returns the ids and codes of up to n customers spread evenly over
// the whole data set (pages of 100 in code order).
func (c *client) sample(ctx context.Context, n int) (ids, codes []string, err error) {
	total, err := c.total(ctx)
	if err != nil || total == 0 {
		return nil, nil, err
	}
	pages := (total + 99) / 100
	want := min(int64(n+99)/100, pages)
	for i := int64(0); i < want; i++ {
		page := 1 + i*pages/want
		out, err := c.list(ctx, fmt.Sprintf("page=%d&perPage=100&sort=customerCode", page))
		if err != nil {
			return nil, nil, err
		}
		for _, d := range out.Data {
			ids = append(ids, d.CustomerID)
			codes = append(codes, d.CustomerCode)
		}
	}
	return ids, codes, nil
}

// tokenSubject returns the sub claim of a JWT, unverified ("" if none).
func tokenSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Sub
}
