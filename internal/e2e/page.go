package e2e

import (
	"context"
	"encoding/json"

	"github.com/chromedp/chromedp"
)

// Page is one browser tab that tests drive the same way in Chromium
// (CDP), Firefox (WebDriver BiDi, *Firefox) and WebKit (WebDriver,
// *WebKit).
type Page interface {
	// Eval evaluates an expression (awaiting a promise) and decodes its
	// JSON form into out (nil: discard).
	Eval(ctx context.Context, expr string, out any) error
	Screenshot(ctx context.Context) ([]byte, error)
}

// ChromiumPage is a chromedp tab as a Page.
type ChromiumPage struct{ Tab context.Context }

// Eval implements Page.
func (c ChromiumPage) Eval(ctx context.Context, expr string, out any) error {
	tctx, cancel := c.bounded(ctx)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[string]("(async () => JSON.stringify(await ("+expr+")) ?? 'null')()", chromedp.EvalAwaitPromise))
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal([]byte(s), out)
}

// Screenshot implements Page.
func (c ChromiumPage) Screenshot(ctx context.Context) ([]byte, error) {
	tctx, cancel := c.bounded(ctx)
	defer cancel()
	return chromedp.Run(tctx, chromedp.CaptureScreenshot())
}

// Navigate loads url in the tab.
func (c ChromiumPage) Navigate(ctx context.Context, url string) error {
	tctx, cancel := c.bounded(ctx)
	defer cancel()
	return chromedp.Do(tctx, chromedp.Navigate(url))
}

// bounded is the tab's context with ctx's deadline.
func (c ChromiumPage) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(c.Tab, d)
	}
	return context.WithCancel(c.Tab)
}
