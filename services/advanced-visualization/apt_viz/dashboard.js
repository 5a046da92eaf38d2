// The dashboard's run selection (RUNS embedded by dashboard.py, see filters.py): HParams-style
// filters (a setting's range or values, a final metric's range) and the brush of the parallel
// coordinates. The parallel coordinates draw the runs that pass the filters; the curves show the
// runs that pass the filters and the brush. Offline: plain DOM and the page's own plotly.js.
(function () {
  const P = document.getElementById('settings');
  if (!P) return;
  const names = RUNS.names, all = P.data[0].dimensions.map(d => d.values.slice());
  let shown = names.map((_, i) => i);  // runs (indices into names) passing the filters
  const table = document.getElementById('filters');
  const cell = (tr, html) => { const td = document.createElement('td'); td.innerHTML = html; tr.appendChild(td); return td; };
  const esc = s => s.replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
  RUNS.filters.forEach((f, n) => {
    const tr = document.createElement('tr'); tr.dataset.filter = n;
    cell(tr, esc(f.key)); cell(tr, f.group);
    if (f.kind === 'range') {
      const lo = Math.min(...f.values), hi = Math.max(...f.values);
      cell(tr, '<input type="number" step="any" class="lo" placeholder="' + lo + '"> to ' +
               '<input type="number" step="any" class="hi" placeholder="' + hi + '">');
    } else {
      cell(tr, f.options.map(o => '<label><input type="checkbox" class="opt" checked value="' + esc(o) + '"> ' +
                                  esc(o) + '</label>').join(' '));
    }
    table.appendChild(tr);
  });
  function passes(f, row, i) {
    const v = f.values[i];
    if (f.kind === 'choice') {
      return [...row.querySelectorAll('input.opt')].some(box => box.checked && box.value === v);
    }
    const lo = parseFloat(row.querySelector('input.lo').value), hi = parseFloat(row.querySelector('input.hi').value);
    return !(v < lo) && !(v > hi);  // an empty box (NaN) bounds nothing
  }
  function applyFilters() {
    const rows = [...table.querySelectorAll('tr[data-filter]')];
    shown = names.map((_, i) => i).filter(i => rows.every(r => passes(RUNS.filters[+r.dataset.filter], r, i)));
    document.getElementById('filtered').textContent = shown.length + ' of ' + names.length + ' runs pass the filters';
    const dims = P.data[0].dimensions.map((d, k) => {
      const out = {label: d.label, range: d.range, values: shown.map(i => all[k][i])};
      if (d.constraintrange) out.constraintrange = d.constraintrange;
      return out;
    });
    Plotly.restyle(P, {dimensions: [dims], 'line.color': [shown]}, [0]);  // fires plotly_restyle: sync
  }
  function brushed(d, row) {
    const r = d.constraintrange;
    if (!r) return true;
    const v = d.values[row];
    return (Array.isArray(r[0]) ? r : [r]).some(([a, b]) => v >= a && v <= b);
  }
  function sync() {
    const dims = P.data[0].dimensions;
    const keep = new Set(shown.filter((i, row) => dims.every(d => brushed(d, row))).map(i => names[i]));
    ['curves-step', 'curves-tokens', 'curves-wall'].forEach(id => {
      const g = document.getElementById(id);
      if (g) Plotly.restyle(g, {visible: g.data.map(t => keep.has(t.meta))});
    });
    document.getElementById('brushed').textContent = keep.size + ' of ' + names.length + ' models shown';
  }
  table.addEventListener('input', applyFilters);
  table.addEventListener('change', applyFilters);
  P.on('plotly_restyle', sync);
  // at load every run passes and none is brushed: say so without redrawing anything
  document.getElementById('filtered').textContent = names.length + ' of ' + names.length + ' runs pass the filters';
  document.getElementById('brushed').textContent = names.length + ' of ' + names.length + ' models shown';
})();
