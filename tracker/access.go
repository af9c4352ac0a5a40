package tracker

import (
	"errors"
	"fmt"
	"time"

	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/viewertoken"
)

// StoreAccess admits viewers to streams that exist in the store; private
// streams need a viewer token minted with TokenSecret.
type StoreAccess struct {
	Store       store.Backend
	TokenSecret []byte
	Now         func() time.Time
}

// Admit implements Access.
func (a StoreAccess) Admit(stream, token string) error {
	st, err := a.Store.Stream(stream)
	if errors.Is(err, store.ErrNotFound) || (err == nil && st.Revoked) {
		return ErrNoStream
	}
	if err != nil {
		return err
	}
	if !st.Private {
		return nil
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if _, err := viewertoken.Check(a.TokenSecret, stream, token, now()); err != nil {
		return fmt.Errorf("%w: %v", ErrNotAdmitted, err)
	}
	return nil
}
