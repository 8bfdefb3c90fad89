// Show a form section only when the choice it belongs to is selected:
// <div data-show-when="protocol=Https|Tls"> ... </div>. Without JavaScript every section shows.
(function () {
  function currentValue(form, name) {
    const checked = form.querySelector('input[name="' + name + '"]:checked');
    if (checked) return checked.value;
    const field = form.querySelector('[name="' + name + '"]');
    if (!field) return "";
    if (field.type === "checkbox") return field.checked ? field.value : "";
    return field.value;
  }
  function refresh(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (section) {
      const rule = section.getAttribute("data-show-when");
      const [name, values] = rule.split("=");
      const shown = values.split("|").includes(currentValue(form, name));
      section.hidden = !shown;
      section.querySelectorAll("input, select, textarea").forEach(function (el) {
        el.disabled = !shown;
      });
    });
  }
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("change", function () { refresh(form); });
    refresh(form);
  });
})();
