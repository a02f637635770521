#!/usr/bin/env node
// An independent SMSC for conformance tests of smsgw/smpp, built on
// node-smpp (npm "smpp" 0.5.1), which shares no code with go-smpp.
//
// Usage: node smsc.js PORT [SYSTEM_ID PASSWORD]   (PORT 0 picks a free one)
//
// stdout: "listening PORT", then one JSON object per line for each event:
//   {"event":"bound","system_id":...}
//   {"event":"mt","seq":N,"id":"node-N","dc":N,"esm_class":N,"udh":"hex"|null,"text":"...","payload":bool}
//   {"event":"mo_resp","ref":R,"seq":N,"status":N}
//   {"event":"enquire_link"}            (the ESME asked)
//   {"event":"enquire_link_resp","ref":R,"status":N}
//   {"event":"throttled","seq":N}       (a submit_sm answered ESME_RTHROTTLED)
//   {"event":"generic_nack","seq":N,"status":N}
//   {"event":"unbind"}                  (the ESME unbound us; answered)
//   {"event":"unbind_resp","ref":R}
//   {"event":"closed"}
// stdin: one JSON command per line:
//   {"cmd":"mo","ref":R,"from":..,"to":..,"text":..,"dc":0|8,"udh":"hex"?,"seq":N?,
//    "hex":"..."?,"payload":bool?,"esm_class":N?,"ton":N?,"npi":N?}
//       deliver_sm; seq forces the sequence number (to collide with the ESME's);
//       hex sends those bytes as short_message (binary data); payload sends the
//       text as message_payload with an empty short_message; esm_class 4 makes
//       it a delivery receipt; ton/npi address the sender
//   {"cmd":"throttle","n":N}         answer the next N submit_sm ESME_RTHROTTLED
//   {"cmd":"drop"}                   drop the TCP connection, no unbind
//   {"cmd":"hold","on":true|false}   hold submit_sm_resp until released
//   {"cmd":"enquire","ref":R}        send enquire_link
//   {"cmd":"unknown"}                send a PDU with command id 0x00000099
//   {"cmd":"unbind","ref":R}         send unbind, close after unbind_resp
'use strict';
const smpp = require('smpp');
const readline = require('readline');

const port = parseInt(process.argv[2] || '0', 10);
const systemID = process.argv[3] || 'roamtrail';
const password = process.argv[4] || 'secret';

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let session = null;
let nextID = 0;
let hold = false;
let throttle = 0;
const held = [];

function textOf(value) {
  if (value && typeof value === 'object' && 'message' in value) {
    const m = value.message;
    return { text: Buffer.isBuffer(m) ? m.toString('hex') : m, udh: value.udh && value.udh.length ? Buffer.concat(value.udh).toString('hex') : null };
  }
  return { text: Buffer.isBuffer(value) ? value.toString('hex') : String(value), udh: null };
}

const server = smpp.createServer((s) => {
  s.on('error', () => {});
  s.on('close', () => { if (session === s) session = null; out({ event: 'closed' }); });
  s.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== systemID || pdu.password !== password) {
      s.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
      return;
    }
    s.send(pdu.response({ system_id: 'nodesmsc' }));
    session = s;
    out({ event: 'bound', system_id: pdu.system_id });
  });
  s.on('submit_sm', (pdu) => {
    if (throttle > 0) {
      throttle--;
      out({ event: 'throttled', seq: pdu.sequence_number });
      s.send(pdu.response({ command_status: smpp.ESME_RTHROTTLED }));
      return;
    }
    const id = 'node-' + (++nextID);
    const payload = pdu.message_payload !== undefined && (!pdu.short_message || !pdu.short_message.message || pdu.short_message.message.length === 0);
    const t = textOf(payload ? pdu.message_payload : pdu.short_message);
    out({ event: 'mt', seq: pdu.sequence_number, id, dc: pdu.data_coding, esm_class: pdu.esm_class,
      udh: t.udh, text: t.text, payload,
      sar: pdu.sar_msg_ref_num !== undefined ? [pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum] : null });
    const resp = pdu.response({ message_id: id });
    if (hold) held.push(resp); else s.send(resp);
  });
  s.on('enquire_link', (pdu) => { out({ event: 'enquire_link' }); s.send(pdu.response()); });
  s.on('unbind', (pdu) => { out({ event: 'unbind' }); s.send(pdu.response()); s.close(); });
  s.on('generic_nack', (pdu) => out({ event: 'generic_nack', seq: pdu.sequence_number, status: pdu.command_status }));
});

server.listen(port, '127.0.0.1', () => {
  out({ event: 'listening', port: server.address().port });
  process.stdout.write('listening ' + server.address().port + '\n');
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let c;
  try { c = JSON.parse(line); } catch (e) { out({ event: 'error', error: 'bad command' }); return; }
  const s = session;
  if (c.cmd === 'throttle') {
    throttle = c.n || 0;
    out({ event: 'throttle', n: throttle, ref: c.ref });
    return;
  }
  if (c.cmd === 'hold') {
    hold = !!c.on;
    if (!hold && s) while (held.length) s.send(held.shift());
    out({ event: 'hold', on: hold, ref: c.ref });
    return;
  }
  if (!s) { out({ event: 'error', error: 'not bound', ref: c.ref }); return; }
  switch (c.cmd) {
    case 'mo': {
      const opts = {
        source_addr_ton: 1, source_addr_npi: 1, source_addr: c.from, destination_addr: c.to,
        data_coding: c.dc || 0,
        short_message: c.udh ? { udh: Buffer.from(c.udh, 'hex'), message: c.text } : c.text,
      };
      if (c.udh) opts.esm_class = 0x40;
      if (c.seq) opts.sequence_number = c.seq;
      if (c.hex !== undefined) opts.short_message = Buffer.from(c.hex, 'hex');
      if (c.payload) { opts.short_message = Buffer.alloc(0); opts.message_payload = c.text; }
      if (c.esm_class !== undefined) opts.esm_class = c.esm_class;
      if (c.ton !== undefined) opts.source_addr_ton = c.ton;
      if (c.npi !== undefined) opts.source_addr_npi = c.npi;
      s.deliver_sm(opts, (resp) => out({ event: 'mo_resp', ref: c.ref, seq: resp.sequence_number, status: resp.command_status }));
      break;
    }
    case 'enquire':
      s.enquire_link((resp) => out({ event: 'enquire_link_resp', ref: c.ref, status: resp.command_status }));
      break;
    case 'unknown': {
      const b = Buffer.alloc(16);
      b.writeUInt32BE(16, 0); b.writeUInt32BE(0x99, 4); b.writeUInt32BE(0, 8); b.writeUInt32BE(4242, 12);
      s.socket.write(b);
      break;
    }
    case 'drop':
      s.socket.destroy();
      break;
    case 'unbind':
      s.unbind((resp) => { out({ event: 'unbind_resp', ref: c.ref, status: resp.command_status }); s.close(); });
      break;
    default:
      out({ event: 'error', error: 'unknown command ' + c.cmd, ref: c.ref });
  }
});
process.stdin.on('end', () => { server.close(); if (session) session.destroy(); process.exit(0); });
