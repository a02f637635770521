package smstext

import "testing"

// The prompt, as the gateway encodes it and the simulator decodes it.
const benchUCS2Text = "您正在查询手机近15天到达或途经的地点。回复Y即表示您授权本次查询，回复N取消，10分钟内有效。"

func BenchmarkEncodeUCS2(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		encodeUCS2(benchUCS2Text)
	}
}

func BenchmarkDecodeUCS2(b *testing.B) {
	enc := encodeUCS2(benchUCS2Text)
	b.ReportAllocs()
	for b.Loop() {
		decodeUCS2(enc)
	}
}
