// Canvas views of the attention maps in ATT (embedded by attention.py): a thumbnail per
// layer x head, a large map with the weight under the mouse, and a head view (lines from the
// hovered query token to the keys it attends to). Weights: see attention.py quantize.
(function () {
  const T = ATT.tokens.length;
  const bytes = b => Uint8Array.from(atob(b), c => c.charCodeAt(0));
  function decode(m) {  // attention.py quantize: uint8 rest, per-row scale, exact top weight
    return {q: bytes(m.q), s: new Float32Array(bytes(m.s).buffer), t: new Uint16Array(bytes(m.t).buffer),
            v: new Float32Array(bytes(m.v).buffer)};
  }
  const M = {};
  for (const k in ATT.mats) M[k] = decode(ATT.mats[k]);
  function weight(m, i, j) {
    if (j > i) return 0;
    return j === m.t[i] ? m.v[i] : m.q[i * (i + 1) / 2 + j] / 255 * m.s[i];
  }
  function draw(canvas, m) {
    const ctx = canvas.getContext('2d'), img = ctx.createImageData(T, T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
      const v = Math.sqrt(weight(m, i, j)), p = 4 * (i * T + j);  // sqrt: faint weights stay visible
      img.data[p] = 255 - 220 * v; img.data[p + 1] = 255 - 160 * v; img.data[p + 2] = 255 - 40 * v; img.data[p + 3] = 255;
    }
    const off = document.createElement('canvas'); off.width = T; off.height = T;
    off.getContext('2d').putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  }
  const label = i => JSON.stringify(ATT.tokens[i] || '·');
  let current = null;
  function select(key) {
    current = key; const [l, h] = key.split(',');
    document.getElementById('selected').textContent = 'layer ' + l + ', head ' + h;
    draw(document.getElementById('big'), M[key]); headview(-1);
  }
  function headview(query) {
    const c = document.getElementById('headview'), ctx = c.getContext('2d');
    ctx.clearRect(0, 0, c.width, c.height);
    const shown = Math.min(T, 64), first = query < 0 ? 0 : Math.max(0, Math.min(query - shown + 1, T - shown));
    const y = i => 8 + (i - first) * (c.height - 16) / Math.max(shown - 1, 1);
    ctx.font = '11px monospace'; ctx.fillStyle = '#222';
    for (let i = first; i < first + shown; i++) {
      ctx.textAlign = 'right'; ctx.fillText(label(i).slice(0, 14), 120, y(i) + 4);
      ctx.textAlign = 'left'; ctx.fillText(label(i).slice(0, 14), 300, y(i) + 4);
    }
    if (query < 0) return;
    for (let j = first; j <= query; j++) {
      ctx.strokeStyle = 'rgba(40,90,200,' + weight(M[current], query, j) + ')'; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(125, y(query)); ctx.lineTo(295, y(j)); ctx.stroke();
    }
  }
  const grid = document.getElementById('grid');
  ATT.layers.forEach(l => {
    const row = document.createElement('div'); row.textContent = 'layer ' + l + ' ';
    ATT.heads.forEach(h => {
      const c = document.createElement('canvas'); c.width = 128; c.height = 128; c.className = 'thumb';
      const kv = ATT.stats.find(x => x.layer === l && x.head === h).kv_head;
      c.title = 'layer ' + l + ', head ' + h + ' (key/value head ' + kv + ')'; c.style.margin = '2px'; c.style.cursor = 'pointer';
      c.onclick = () => select(l + ',' + h); row.appendChild(c); draw(c, M[l + ',' + h]);
    });
    grid.appendChild(row);
  });
  const big = document.getElementById('big');
  big.addEventListener('mousemove', e => {
    const r = big.getBoundingClientRect();
    const i = Math.floor((e.clientY - r.top) / r.height * T), j = Math.floor((e.clientX - r.left) / r.width * T);
    if (i < 0 || j < 0 || i >= T || j >= T || !current) return;
    document.getElementById('hover').textContent =
      'query ' + i + ' ' + label(i) + ' -> key ' + j + ' ' + label(j) + ': ' + weight(M[current], i, j).toFixed(4);
    headview(i);
  });
  select(ATT.layers[0] + ',' + ATT.heads[0]);
})();
