package smstext

// The GSM 03.38 (3GPP TS 23.038) default alphabet and its extension
// table. SMPP carries GSM text with data_coding 0x00 as unpacked septets:
// one octet per septet, the top bit clear. The SMSC packs them for the air.

const gsmEscape = 0x1B

// gsmDefault maps a septet to its character. 0x1B is the escape to the
// extension table and is never looked up here.
var gsmDefault = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u00a0', 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExtension maps the septet after an escape to its character.
var gsmExtension = map[byte]rune{
	0x0A: '\f',
	0x14: '^',
	0x28: '{',
	0x29: '}',
	0x2F: '\\',
	0x3C: '[',
	0x3D: '~',
	0x3E: ']',
	0x40: '|',
	0x65: '€',
}

var (
	gsmDefaultRev   = map[rune]byte{}
	gsmExtensionRev = map[rune]byte{}
)

func init() {
	for i, r := range gsmDefault {
		if i == gsmEscape {
			continue
		}
		gsmDefaultRev[r] = byte(i)
	}
	for b, r := range gsmExtension {
		gsmExtensionRev[r] = b
	}
}

// decodeGSM decodes unpacked septets. A septet with the top bit set is not
// GSM and becomes U+FFFD. An escape followed by a septet the extension
// table lacks shows the default-table character, as 23.038 asks; an
// escape at the very end becomes U+FFFD.
func decodeGSM(b []byte) string {
	out := make([]rune, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 0x80:
			out = append(out, '\uFFFD')
		case c == gsmEscape:
			if i+1 >= len(b) {
				out = append(out, '\uFFFD')
				continue
			}
			i++
			n := b[i]
			if n >= 0x80 {
				out = append(out, '\uFFFD')
				continue
			}
			if r, ok := gsmExtension[n]; ok {
				out = append(out, r)
			} else if n == gsmEscape {
				out = append(out, ' ')
			} else {
				out = append(out, gsmDefault[n])
			}
		default:
			out = append(out, gsmDefault[c])
		}
	}
	return string(out)
}

// gsmSeptets reports how many septets r takes in GSM 03.38 (1 or 2), or 0
// when r has no GSM representation.
func gsmSeptets(r rune) int {
	if _, ok := gsmDefaultRev[r]; ok {
		return 1
	}
	if _, ok := gsmExtensionRev[r]; ok {
		return 2
	}
	return 0
}

// appendGSM appends the unpacked septets of r; r must be representable.
func appendGSM(dst []byte, r rune) []byte {
	if b, ok := gsmDefaultRev[r]; ok {
		return append(dst, b)
	}
	return append(dst, gsmEscape, gsmExtensionRev[r])
}
