// dolab widgets: helpers every widget's module starts with (Python prepends this file to each
// widget's own, see _live.assets).
function html(tag, cls, parent, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}
