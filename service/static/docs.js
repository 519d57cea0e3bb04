// The API reference page: renders the service's own /openapi.json (OpenAPI 3) as
// HTML, so the reference always matches the running version and needs no network.
// Schemas are shown as compact JSON-like outlines; $refs become links to the
// schema's section. All text is set as textContent.
"use strict";

(function () {
  const { make, byId: $ } = window.Dom;
  const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];

  // Text with `code` spans, as OpenAPI descriptions write them (a subset of
  // Markdown: anything else stays plain text).
  function prose(tag, text, className) {
    const node = make(tag, null, className);
    String(text).split("`").forEach((part, i) => {
      node.append(i % 2 ? make("code", part) : part);
    });
    return node;
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  function anchorFor(method, path) {
    return `op-${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}`;
  }

  // A schema as an outline: "{ horizon: integer (1..60), series: string }" over
  // several lines, with each $ref as a link. Depth-limited so a recursive schema
  // cannot run away.
  function outline(schema, depth) {
    const holder = make("span");
    if (!schema || typeof schema !== "object") {
      holder.textContent = "any";
      return holder;
    }
    if (schema.$ref) {
      const link = make("a", refName(schema.$ref));
      link.href = `#schema-${refName(schema.$ref)}`;
      holder.append(link);
      return holder;
    }
    if (depth > 6) {
      holder.textContent = "…";
      return holder;
    }
    for (const combiner of ["oneOf", "anyOf", "allOf"]) {
      if (Array.isArray(schema[combiner])) {
        holder.append(`${combiner}(`);
        schema[combiner].forEach((part, i) => {
          if (i) holder.append(" | ");
          holder.append(outline(part, depth + 1));
        });
        holder.append(")");
        return holder;
      }
    }
    const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
    if (type === "array" || schema.items) {
      holder.append("[", outline(schema.items, depth + 1), "]");
    } else if (type === "object" || schema.properties) {
      const indent = "  ".repeat(depth + 1);
      const required = new Set(schema.required || []);
      holder.append("{");
      for (const [name, property] of Object.entries(schema.properties || {})) {
        holder.append(`\n${indent}${name}${required.has(name) ? "" : "?"}: `,
          outline(property, depth + 1));
        if (property && property.description) holder.append(`  // ${property.description}`);
      }
      if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
        holder.append(`\n${indent}<name>: `, outline(schema.additionalProperties, depth + 1));
      }
      holder.append(`\n${"  ".repeat(depth)}}`);
    } else {
      holder.append(type || "any");
    }
    const limits = [];
    if (schema.enum) limits.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
    if (schema.format) limits.push(schema.format);
    if (schema.minimum !== undefined || schema.maximum !== undefined) {
      limits.push(`${schema.minimum ?? ""}..${schema.maximum ?? ""}`);
    }
    if (schema.maxItems !== undefined) limits.push(`at most ${schema.maxItems} items`);
    if (schema.default !== undefined) limits.push(`default ${JSON.stringify(schema.default)}`);
    if (limits.length) holder.append(` (${limits.join("; ")})`);
    return holder;
  }

  function schemaBlock(schema) {
    const pre = make("pre", null, "schema");
    pre.append(outline(schema, 0));
    return pre;
  }

  function describeContent(container, content) {
    for (const [type, media] of Object.entries(content || {})) {
      const line = make("p", `${type}: `, "hint");
      container.append(line);
      // A named schema is one link on the type's line; an inline one is outlined.
      if (media.schema && media.schema.$ref) {
        line.append(outline(media.schema, 0));
      } else if (media.schema) {
        container.append(schemaBlock(media.schema));
      }
      const example = media.example !== undefined ? media.example
        : media.examples && Object.values(media.examples)[0]
          && Object.values(media.examples)[0].value;
      if (example !== undefined) {
        container.append(make("p", "Example:", "hint"),
          make("pre", JSON.stringify(example, null, 2), "schema"));
      }
    }
  }

  function renderParameters(section, parameters) {
    if (!parameters || parameters.length === 0) return;
    section.append(make("h4", "Parameters"));
    const list = make("ul");
    for (const p of parameters) {
      const item = make("li");
      item.append(make("code", p.name), ` (${p.in}${p.required ? ", required" : ""}): `,
        outline(p.schema, 0), p.description ? ` — ${p.description}` : "");
      list.append(item);
    }
    section.append(list);
  }

  function renderOperation(path, method, operation, shared, components) {
    const section = make("section", null, "docs-op");
    section.id = anchorFor(method, path);
    const heading = make("h3");
    heading.append(make("span", method.toUpperCase(), `method ${method}`), make("code", path));
    if (operation.summary) heading.append(make("span", operation.summary));
    section.append(heading);
    if (operation.deprecated) section.append(make("p", "Deprecated.", "verdict bad"));
    if (operation.description) section.append(prose("p", operation.description));
    renderParameters(section, [...(shared || []), ...(operation.parameters || [])]);
    if (operation.requestBody) {
      section.append(make("h4", `Request body${operation.requestBody.required
        ? " (required)" : ""}`));
      if (operation.requestBody.description) {
        section.append(prose("p", operation.requestBody.description));
      }
      describeContent(section, operation.requestBody.content);
    }
    const responses = Object.entries(operation.responses || {});
    if (responses.length) {
      section.append(make("h4", "Responses"));
      for (const [status, response] of responses) {
        const resolved = response.$ref
          ? (components.responses || {})[refName(response.$ref)]
            || { description: `See ${refName(response.$ref)}` }
          : response;
        const block = make("div");
        const title = make("p");
        title.append(make("strong", status), " ",
          prose("span", resolved.description || ""));
        block.append(title);
        describeContent(block, resolved.content);
        section.append(block);
      }
    }
    return section;
  }

  function render(spec) {
    const info = spec.info || {};
    document.title = `${info.title || "API"} reference`;
    $("docs-title").textContent = `${info.title || "API"} reference`;
    const about = $("about-text");
    about.append(make("p", `Version ${info.version || "unknown"} · OpenAPI ${spec.openapi
      || spec.swagger || "unknown"}`, "hint"));
    if (info.description) {
      for (const paragraph of info.description.split(/\n\s*\n/)) {
        about.append(prose("p", paragraph));
      }
    }
    $("about").hidden = false;

    const groups = new Map();
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const tag = (item[method].tags && item[method].tags[0]) || "Endpoints";
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push([path, method, item[method], item.parameters]);
      }
    }
    const toc = $("toc");
    const operations = $("operations");
    for (const [tag, entries] of groups) {
      const card = make("section", null, "card");
      card.append(make("h2", tag));
      for (const [path, method, operation, shared] of entries) {
        card.append(renderOperation(path, method, operation, shared,
          spec.components || {}));
        const item = make("li");
        const link = make("a", `${method.toUpperCase()} ${path}`);
        link.href = `#${anchorFor(method, path)}`;
        item.append(link);
        toc.append(item);
      }
      operations.append(card);
    }

    const schemas = Object.entries((spec.components || {}).schemas || {});
    if (schemas.length) {
      const list = $("schema-list");
      for (const [name, schema] of schemas) {
        const block = make("div", null, "docs-op");
        block.id = `schema-${name}`;
        block.append(make("h3", name));
        if (schema.description) block.append(prose("p", schema.description));
        block.append(schemaBlock(schema));
        list.append(block);
      }
      $("schemas").hidden = false;
    }
    const count = [...groups.values()].reduce((n, entries) => n + entries.length, 0);
    $("status").textContent = `${count} operations.`;
  }

  async function start() {
    let spec;
    try {
      const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
      spec = await response.json().catch(() => null);
      if (!response.ok) {
        throw new Error(spec && spec.error ? spec.error
          : `GET /openapi.json answered ${response.status}.`);
      }
      if (!spec || typeof spec.paths !== "object") {
        throw new Error("/openapi.json is not an OpenAPI document (it has no paths).");
      }
    } catch (e) {
      $("status").textContent = "The API description could not be loaded.";
      const problem = $("problem");
      problem.textContent = e.message;
      problem.hidden = false;
      return;
    }
    render(spec);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
