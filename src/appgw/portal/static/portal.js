// Show a form section only when the choice it belongs to is selected:
// <div data-show-when="protocol=Https|Tls"> ... </div>; "a=x;b=y" shows it when either holds.
// Without JavaScript every section shows.
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
      const shown = section.getAttribute("data-show-when").split(";").some(function (rule) {
        const [name, values] = rule.split("=");
        return values.split("|").includes(currentValue(form, name));
      });
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
