// Appended to a copy of a Snakemake report by tests/test_browser.py. Once the report's app has rendered, it shows
// every subcategory and result through the app's own view state, clicks each result's view button where it
// opens a view (figures), and writes what each view rendered, as JSON, into a pre element at the end of the body.
"use strict";

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
const head = (text) => (text === null ? null : text.slice(0, 40));

async function show(view) {
    app.setView(view);
    await settle();
    return document.querySelector("nav");
}

function rendered(nav) {
    const prose = nav.querySelector(".prose");
    return {
        caption: prose ? prose.innerText : "",
        tables: [...nav.querySelectorAll("table.docutils")].map(
            (table) => [...table.rows].map((row) => [...row.cells].map((cell) => cell.innerText))),
        errors: nav.querySelectorAll(".system-message, .problematic").length,
    };
}

async function visit(path) {
    const nav = await show({ navbarMode: "resultinfo", resultPath: path });
    const button = nav.querySelector("ul a[type=button]");
    const view = { path, ...rendered(nav), href: head(button.getAttribute("href")),
                   download: button.getAttribute("download"), shown: null };
    if (view.href === "#") {
        button.click();
        await settle();
        const frame = document.querySelector("iframe");
        view.shown = frame ? head(frame.getAttribute("src")) : null;
    }
    return view;
}

window.addEventListener("load", async () => {
    await settle();
    const views = [];
    for (const [category, subcategories] of Object.entries(categories)) {
        for (const [subcategory, paths] of Object.entries(subcategories)) {
            const listed = (await show({ navbarMode: "subcategory", category, subcategory })).innerText;
            for (const path of paths) {
                views.push({ category, subcategory, listed, ...(await visit(path)) });
            }
        }
    }
    const out = document.createElement("pre");
    out.id = "ddubench-views";
    out.textContent = JSON.stringify(views);
    document.body.appendChild(out);
});
