// Keyboard layouts for typing text into a VM's screen. noVNC sends QEMU the
// physical key (a scancode) and the guest's own layout turns it into a
// character, so typing "z" into a German guest means pressing the key
// where a US keyboard has Y. Each layout maps a character to the key and
// the modifiers that make it on that layout.

const us = {
  Backquote: '`~', Digit1: '1!', Digit2: '2@', Digit3: '3#', Digit4: '4$', Digit5: '5%', Digit6: '6^',
  Digit7: '7&', Digit8: '8*', Digit9: '9(', Digit0: '0)', Minus: '-_', Equal: '=+',
  BracketLeft: '[{', BracketRight: ']}', Backslash: '\\|', Semicolon: ';:', Quote: '\'"',
  Comma: ',<', Period: '.>', Slash: '/?', Space: '  ',
};
for (const c of 'abcdefghijklmnopqrstuvwxyz') us['Key' + c.toUpperCase()] = c + c.toUpperCase();

// Each value: normal, shifted, AltGr (a space where the key has none).
const layouts = {
  us: {},
  gb: { Digit2: '2"', Digit3: '3£', Quote: '\'@', Backslash: '#~', IntlBackslash: '\\|', Backquote: '`¬' },
  de: {
    KeyY: 'zZ', KeyZ: 'yY', Backquote: '^°', Digit2: '2"²', Digit3: '3§³', Digit6: '6&', Digit7: '7/{', Digit8: '8([',
    Digit9: '9)]', Digit0: '0=}', Minus: 'ß?\\', Equal: '´`', BracketLeft: 'üÜ', BracketRight: '+*~', Backslash: '#\'',
    Semicolon: 'öÖ', Quote: 'äÄ', Comma: ',;', Period: '.:', Slash: '-_', IntlBackslash: '<>|', KeyQ: 'qQ@', KeyE: 'eE€', KeyM: 'mMµ',
  },
  fr: {
    KeyQ: 'aA', KeyA: 'qQ', KeyW: 'zZ', KeyZ: 'wW', Semicolon: 'mM', KeyM: ',?', Comma: ';.', Period: ':/', Slash: '!§',
    Backquote: '²', Digit1: '&1', Digit2: 'é2~', Digit3: '"3#', Digit4: '\'4{', Digit5: '(5[', Digit6: '-6|', Digit7: 'è7`',
    Digit8: '_8\\', Digit9: 'ç9^', Digit0: 'à0@', Minus: ')°]', Equal: '=+}', BracketRight: '$£¤', Quote: 'ù%', Backslash: '*µ',
    IntlBackslash: '<>', KeyE: 'eE€',
  },
};

export const layoutNames = { us: 'English (US)', gb: 'English (UK)', de: 'German', fr: 'French' };

// strokes turns text into key strokes for a layout: {code, shift, altgr,
// keysym}; characters the layout cannot type are left out and counted.
export function strokes(text, layout) {
  const keys = { ...us, ...(layouts[layout] || {}) };
  const map = new Map();
  for (const [code, chars] of Object.entries(keys)) {
    [...chars].forEach((ch, i) => { if (ch !== ' ' || code === 'Space') { if (!map.has(ch)) map.set(ch, { code, shift: i === 1, altgr: i === 2 }); } });
  }
  map.set('\n', { code: 'Enter' }); map.set('\t', { code: 'Tab' });
  const out = [];
  let missing = 0;
  for (const ch of text.replace(/\r\n?/g, '\n')) {
    const k = map.get(ch);
    if (!k) { missing++; continue; }
    const cp = ch.codePointAt(0);
    const keysym = ch === '\n' ? 0xff0d : ch === '\t' ? 0xff09 : cp < 0x100 ? cp : 0x1000000 | cp;
    out.push({ ...k, keysym });
  }
  return { out, missing };
}

// typeInto presses the strokes on a noVNC RFB connection.
export function typeInto(rfb, text, layout) {
  const { out, missing } = strokes(text, layout);
  for (const k of out) {
    if (k.shift) rfb.sendKey(0xffe1, 'ShiftLeft', true);
    if (k.altgr) rfb.sendKey(0xfe03, 'AltRight', true);
    rfb.sendKey(k.keysym, k.code);
    if (k.altgr) rfb.sendKey(0xfe03, 'AltRight', false);
    if (k.shift) rfb.sendKey(0xffe1, 'ShiftLeft', false);
  }
  return missing;
}
