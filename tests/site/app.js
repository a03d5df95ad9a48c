// Fetches data/info.json and writes into the page what arrived: the JSON
// value and its type, the computed colour of #status (from style.css) and
// the image's natural size. The test reads these back from the DOM.
function row(name, value) {
  const tr = document.createElement("tr");
  tr.id = name;
  tr.innerHTML = "<td></td><td></td>";
  tr.cells[0].textContent = name;
  tr.cells[1].textContent = value;
  document.getElementById("report").appendChild(tr);
}

async function report() {
  const status = document.getElementById("status");
  const logo = document.getElementById("logo");
  try {
    const r = await fetch("data/info.json");
    const json = await r.json();
    await logo.decode();
    row("json", json.message);
    row("json-type", r.headers.get("content-type"));
    row("css-color", getComputedStyle(status).color);
    row("img-size", logo.naturalWidth + "x" + logo.naturalHeight);
    status.textContent = "all resources arrived";
  } catch (e) {
    row("error", String(e));
    status.textContent = "failed";
  }
  document.title = "done";
}

report();
