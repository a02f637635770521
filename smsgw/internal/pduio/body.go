package pduio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
)

// TLV tags used beyond go-smpp's list.
const (
	TagMessageState       pdutlv.Tag = 0x0427
	TagReceiptedMsgID     pdutlv.Tag = pdutlv.TagReceiptedMessageID
	TagMessagePayload     pdutlv.Tag = pdutlv.TagMessagePayload
	TagSarMsgRefNum       pdutlv.Tag = pdutlv.TagSarMsgRefNum
	TagSarTotalSegments   pdutlv.Tag = pdutlv.TagSarTotalSegments
	TagSarSegmentSeqnum   pdutlv.Tag = pdutlv.TagSarSegmentSeqnum
	TagNetworkErrorCode   pdutlv.Tag = pdutlv.TagNetworkErrorCode
	TagScInterfaceVersion pdutlv.Tag = 0x0210
)

// Command ids go-smpp leaves out.
const (
	AlertNotificationID pdu.ID = pdu.AlertNotificationID
	DataSMID            pdu.ID = pdu.DataSMID
	DataSMRespID        pdu.ID = pdu.DataSMRespID
)

// SMPP field bounds (SMPP 3.4 §5.2, lengths without the NUL).
const (
	maxServiceType = 5
	maxAddr        = 20
	maxTime        = 16
	maxShortMsg    = 254
	maxSystemID    = 15
	maxPassword    = 8
	maxSystemType  = 12
	maxAddrRange   = 40
	maxMessageID   = 64
	maxTLV         = 0xFFFF
)

// SM is the body shared by submit_sm and deliver_sm (same mandatory
// layout), and, with fewer fields, data_sm.
type SM struct {
	ServiceType          string
	SourceTON, SourceNPI byte
	Source               string
	DestTON, DestNPI     byte
	Dest                 string
	ESMClass             byte
	ProtocolID           byte
	PriorityFlag         byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	SMDefaultMsgID       byte
	ShortMessage         []byte
	TLVs                 map[pdutlv.Tag][]byte
}

// ESM class bits.
const (
	ESMUDHI        byte = 0x40
	ESMReceiptMask byte = 0x3C
	ESMReceipt     byte = 0x04
)

var smFields = pdufield.List{
	pdufield.ServiceType, pdufield.SourceAddrTON, pdufield.SourceAddrNPI, pdufield.SourceAddr,
	pdufield.DestAddrTON, pdufield.DestAddrNPI, pdufield.DestinationAddr,
	pdufield.ESMClass, pdufield.ProtocolID, pdufield.PriorityFlag,
	pdufield.ScheduleDeliveryTime, pdufield.ValidityPeriod, pdufield.RegisteredDelivery,
	pdufield.ReplaceIfPresentFlag, pdufield.DataCoding, pdufield.SMDefaultMsgID,
	pdufield.SMLength, pdufield.ShortMessage,
}

var dataSMFields = pdufield.List{
	pdufield.ServiceType, pdufield.SourceAddrTON, pdufield.SourceAddrNPI, pdufield.SourceAddr,
	pdufield.DestAddrTON, pdufield.DestAddrNPI, pdufield.DestinationAddr,
	pdufield.ESMClass, pdufield.RegisteredDelivery, pdufield.DataCoding,
}

func checkCString(name, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrFieldTooLong, name, len(v), max)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains NUL", ErrMalformed, name)
	}
	return nil
}

// Validate checks every length against SMPP's bounds: go-smpp would
// silently wrap sm_length past 255 (notes problem #9).
func (m *SM) Validate() error {
	for _, c := range []struct {
		name string
		v    string
		max  int
	}{
		{"service_type", m.ServiceType, maxServiceType},
		{"source_addr", m.Source, maxAddr},
		{"destination_addr", m.Dest, maxAddr},
		{"schedule_delivery_time", m.ScheduleDeliveryTime, maxTime},
		{"validity_period", m.ValidityPeriod, maxTime},
	} {
		if err := checkCString(c.name, c.v, c.max); err != nil {
			return err
		}
	}
	if len(m.ShortMessage) > maxShortMsg {
		return fmt.Errorf("%w: short_message is %d bytes, at most %d", ErrFieldTooLong, len(m.ShortMessage), maxShortMsg)
	}
	for tag, v := range m.TLVs {
		if len(v) > maxTLV {
			return fmt.Errorf("%w: TLV %s is %d bytes", ErrFieldTooLong, tag.Hex(), len(v))
		}
	}
	if len(m.ShortMessage) > 0 && m.TLVs[TagMessagePayload] != nil {
		return fmt.Errorf("%w: both short_message and message_payload", ErrMalformed)
	}
	return nil
}

// Body builds the go-smpp PDU for id (pdu.SubmitSMID or pdu.DeliverSMID).
// A deliver_sm is built on the submit_sm layout: go-smpp's NewDeliverSM
// writes a stray byte (notes problem #15).
func (m *SM) Body(id pdu.ID) (pdu.Body, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := pdu.NewSubmitSM(nil)
	b.Header().ID = id
	f := b.Fields()
	sets := []struct {
		k pdufield.Name
		v any
	}{
		{pdufield.ServiceType, m.ServiceType},
		{pdufield.SourceAddrTON, m.SourceTON}, {pdufield.SourceAddrNPI, m.SourceNPI}, {pdufield.SourceAddr, m.Source},
		{pdufield.DestAddrTON, m.DestTON}, {pdufield.DestAddrNPI, m.DestNPI}, {pdufield.DestinationAddr, m.Dest},
		{pdufield.ESMClass, m.ESMClass}, {pdufield.ProtocolID, m.ProtocolID}, {pdufield.PriorityFlag, m.PriorityFlag},
		{pdufield.ScheduleDeliveryTime, m.ScheduleDeliveryTime}, {pdufield.ValidityPeriod, m.ValidityPeriod},
		{pdufield.RegisteredDelivery, m.RegisteredDelivery}, {pdufield.ReplaceIfPresentFlag, m.ReplaceIfPresent},
		{pdufield.DataCoding, m.DataCoding}, {pdufield.SMDefaultMsgID, m.SMDefaultMsgID},
		{pdufield.ShortMessage, append([]byte{}, m.ShortMessage...)},
	}
	for _, s := range sets {
		if err := f.Set(s.k, s.v); err != nil {
			return nil, fmt.Errorf("pduio: set %s: %w", s.k, err)
		}
	}
	// TLVs as []byte only: go-smpp writes an int as one byte (problem #10).
	for tag, v := range m.TLVs {
		if err := b.TLVFields().Set(tag, append([]byte{}, v...)); err != nil {
			return nil, fmt.Errorf("pduio: set TLV %s: %w", tag.Hex(), err)
		}
	}
	return b, nil
}

// ParseSM parses a submit_sm or deliver_sm body. The short_message is
// returned raw (UDH included); TLVs are read tolerantly: a malformed TLV
// ends the TLV list instead of failing the whole PDU.
func ParseSM(body []byte) (*SM, error) {
	r := bytes.NewBuffer(body)
	f, err := smFields.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, ok := f[pdufield.SMLength]; !ok {
		return nil, fmt.Errorf("%w: truncated before sm_length", ErrMalformed)
	}
	m := &SM{
		ServiceType: str(f, pdufield.ServiceType), SourceTON: fixed(f, pdufield.SourceAddrTON),
		SourceNPI: fixed(f, pdufield.SourceAddrNPI), Source: str(f, pdufield.SourceAddr),
		DestTON: fixed(f, pdufield.DestAddrTON), DestNPI: fixed(f, pdufield.DestAddrNPI),
		Dest: str(f, pdufield.DestinationAddr), ESMClass: fixed(f, pdufield.ESMClass),
		ProtocolID: fixed(f, pdufield.ProtocolID), PriorityFlag: fixed(f, pdufield.PriorityFlag),
		ScheduleDeliveryTime: str(f, pdufield.ScheduleDeliveryTime), ValidityPeriod: str(f, pdufield.ValidityPeriod),
		RegisteredDelivery: fixed(f, pdufield.RegisteredDelivery), ReplaceIfPresent: fixed(f, pdufield.ReplaceIfPresentFlag),
		DataCoding: fixed(f, pdufield.DataCoding), SMDefaultMsgID: fixed(f, pdufield.SMDefaultMsgID),
	}
	if sm, ok := f[pdufield.ShortMessage]; ok {
		m.ShortMessage = append([]byte{}, sm.Bytes()...)
	}
	m.TLVs = parseTLVs(r.Bytes())
	return m, nil
}

// ParseDataSM parses a data_sm body into an SM (no short_message; the
// text travels in message_payload).
func ParseDataSM(body []byte) (*SM, error) {
	r := bytes.NewBuffer(body)
	f, err := dataSMFields.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, ok := f[pdufield.DataCoding]; !ok {
		return nil, fmt.Errorf("%w: truncated data_sm", ErrMalformed)
	}
	return &SM{
		ServiceType: str(f, pdufield.ServiceType), SourceTON: fixed(f, pdufield.SourceAddrTON),
		SourceNPI: fixed(f, pdufield.SourceAddrNPI), Source: str(f, pdufield.SourceAddr),
		DestTON: fixed(f, pdufield.DestAddrTON), DestNPI: fixed(f, pdufield.DestAddrNPI),
		Dest: str(f, pdufield.DestinationAddr), ESMClass: fixed(f, pdufield.ESMClass),
		RegisteredDelivery: fixed(f, pdufield.RegisteredDelivery), DataCoding: fixed(f, pdufield.DataCoding),
		TLVs: parseTLVs(r.Bytes()),
	}, nil
}

// DataSMBytes serialises a data_sm by hand: go-smpp has no data_sm type.
func DataSMBytes(m *SM, seq uint32) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var b []byte
	b = append(append(b, m.ServiceType...), 0)
	b = append(b, m.SourceTON, m.SourceNPI)
	b = append(append(b, m.Source...), 0)
	b = append(b, m.DestTON, m.DestNPI)
	b = append(append(b, m.Dest...), 0)
	b = append(b, m.ESMClass, m.RegisteredDelivery, m.DataCoding)
	b = append(b, TLVBytes(m.TLVs)...)
	return Frame{ID: DataSMID, Seq: seq, Body: b}.Bytes(), nil
}

// TLVBytes serialises TLVs in tag order.
func TLVBytes(tlvs map[pdutlv.Tag][]byte) []byte {
	tags := make([]int, 0, len(tlvs))
	for t := range tlvs {
		tags = append(tags, int(t))
	}
	sort.Ints(tags)
	var b []byte
	for _, t := range tags {
		v := tlvs[pdutlv.Tag(t)]
		b = binary.BigEndian.AppendUint16(b, uint16(t))
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

// parseTLVs reads TLVs until the data ends or one overruns it.
func parseTLVs(b []byte) map[pdutlv.Tag][]byte {
	m := map[pdutlv.Tag][]byte{}
	for len(b) >= 4 {
		tag := pdutlv.Tag(binary.BigEndian.Uint16(b[0:2]))
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if 4+l > len(b) {
			break
		}
		m[tag] = append([]byte{}, b[4:4+l]...)
		b = b[4+l:]
	}
	return m
}

func str(f pdufield.Map, k pdufield.Name) string {
	if v, ok := f[k]; ok {
		return v.String()
	}
	return ""
}

func fixed(f pdufield.Map, k pdufield.Name) byte {
	if v, ok := f[k]; ok {
		if b := v.Bytes(); len(b) > 0 {
			return b[0]
		}
	}
	return 0
}

// Bind is the body of the three bind requests.
type Bind struct {
	SystemID, Password, SystemType string
	InterfaceVersion               byte
	AddrTON, AddrNPI               byte
	AddressRange                   string
}

var bindFields = pdufield.List{
	pdufield.SystemID, pdufield.Password, pdufield.SystemType, pdufield.InterfaceVersion,
	pdufield.AddrTON, pdufield.AddrNPI, pdufield.AddressRange,
}

// Body builds the bind PDU for id.
func (b Bind) Body(id pdu.ID) (pdu.Body, error) {
	for _, c := range []struct {
		name string
		v    string
		max  int
	}{
		{"system_id", b.SystemID, maxSystemID}, {"password", b.Password, maxPassword},
		{"system_type", b.SystemType, maxSystemType}, {"address_range", b.AddressRange, maxAddrRange},
	} {
		if err := checkCString(c.name, c.v, c.max); err != nil {
			return nil, err
		}
	}
	var p pdu.Body
	switch id {
	case pdu.BindTransceiverID:
		p = pdu.NewBindTransceiver()
	case pdu.BindReceiverID:
		p = pdu.NewBindReceiver()
	case pdu.BindTransmitterID:
		p = pdu.NewBindTransmitter()
	default:
		return nil, fmt.Errorf("pduio: %v is not a bind", id)
	}
	f := p.Fields()
	iv := b.InterfaceVersion
	if iv == 0 {
		iv = 0x34
	}
	for _, s := range []struct {
		k pdufield.Name
		v any
	}{
		{pdufield.SystemID, b.SystemID}, {pdufield.Password, b.Password}, {pdufield.SystemType, b.SystemType},
		{pdufield.InterfaceVersion, iv}, {pdufield.AddrTON, b.AddrTON}, {pdufield.AddrNPI, b.AddrNPI},
		{pdufield.AddressRange, b.AddressRange},
	} {
		if err := f.Set(s.k, s.v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ParseBind parses a bind request body.
func ParseBind(body []byte) (Bind, error) {
	f, err := bindFields.Decode(bytes.NewBuffer(body))
	if err != nil {
		return Bind{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, ok := f[pdufield.AddrNPI]; !ok {
		return Bind{}, fmt.Errorf("%w: truncated bind", ErrMalformed)
	}
	return Bind{
		SystemID: str(f, pdufield.SystemID), Password: str(f, pdufield.Password),
		SystemType: str(f, pdufield.SystemType), InterfaceVersion: fixed(f, pdufield.InterfaceVersion),
		AddrTON: fixed(f, pdufield.AddrTON), AddrNPI: fixed(f, pdufield.AddrNPI),
		AddressRange: str(f, pdufield.AddressRange),
	}, nil
}

// ParseID reads the leading C-string of a response body: message_id of
// submit_sm_resp/deliver_sm_resp/data_sm_resp, system_id of bind_resp.
// An empty body (allowed for error responses) gives "".
func ParseID(body []byte) (string, error) {
	if len(body) == 0 {
		return "", nil
	}
	i := bytes.IndexByte(body, 0)
	if i < 0 {
		return "", fmt.Errorf("%w: unterminated id", ErrMalformed)
	}
	if i > maxMessageID {
		return "", fmt.Errorf("%w: id of %d bytes", ErrFieldTooLong, i)
	}
	return string(body[:i]), nil
}

// IDResp builds a response whose body is one C-string id (bind_resp,
// submit_sm_resp, deliver_sm_resp, data_sm_resp) using go-smpp where it
// has the type.
func IDResp(id pdu.ID, seq uint32, status pdu.Status, msgID string) ([]byte, error) {
	if err := checkCString("message_id", msgID, maxMessageID); err != nil {
		return nil, err
	}
	var p pdu.Body
	switch id {
	case pdu.SubmitSMRespID:
		p = pdu.NewSubmitSMResp()
	case pdu.DeliverSMRespID:
		p = pdu.NewDeliverSMResp()
	case pdu.BindTransceiverRespID:
		p = pdu.NewBindTransceiverResp()
	case pdu.BindReceiverRespID:
		p = pdu.NewBindReceiverResp()
	case pdu.BindTransmitterRespID:
		p = pdu.NewBindTransmitterResp()
	default:
		return Frame{ID: id, Status: status, Seq: seq, Body: append([]byte(msgID), 0)}.Bytes(), nil
	}
	name := pdufield.MessageID
	if id&^0x80000000 == pdu.BindTransceiverID || id&^0x80000000 == pdu.BindReceiverID || id&^0x80000000 == pdu.BindTransmitterID {
		name = pdufield.SystemID
	}
	if err := p.Fields().Set(name, msgID); err != nil {
		return nil, err
	}
	return Encode(p, seq, status)
}

// Empty builds a header-only PDU (enquire_link(_resp), unbind(_resp),
// generic_nack, alert_notification shells).
func Empty(id pdu.ID, seq uint32, status pdu.Status) []byte {
	return Frame{ID: id, Status: status, Seq: seq}.Bytes()
}
