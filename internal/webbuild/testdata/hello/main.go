//go:build js && wasm

// Command hello is the smallest js/wasm program, for the build helper's
// own test.
package main

func main() { println("hello from wasm") }
