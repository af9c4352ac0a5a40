// Command mint-viewer-token mints a Banyan viewer token with the standard
// library only: what an operator's own site does to admit its users to a
// private stream. Usage: mint-viewer-token SECRET_BASE64URL STREAM TTL_SECONDS
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"time"
)

func mint(secret []byte, stream string, expiry time.Time) string {
	payload := stream + ":" + strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(payload))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(mac.Sum(nil))
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: mint-viewer-token SECRET_BASE64URL STREAM TTL_SECONDS")
		os.Exit(2)
	}
	secret, err := base64.RawURLEncoding.DecodeString(os.Args[1])
	ttl, err2 := strconv.Atoi(os.Args[3])
	if err != nil || err2 != nil || ttl <= 0 {
		fmt.Fprintln(os.Stderr, "bad secret or ttl")
		os.Exit(2)
	}
	fmt.Println(mint(secret, os.Args[2], time.Now().Add(time.Duration(ttl)*time.Second)))
}
